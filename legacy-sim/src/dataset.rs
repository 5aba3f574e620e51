//! Descriptions of the datasets the simulated legacy system sends (SC-FTP-1, SC-ACQ-1,
//! SEC-MASK-1, DES-PROF-*): column names, CSV header labels, types, units and which columns carry
//! personal data (the ones the gateway's masking rules are for). Public so that the gateway's
//! provisioning (`platform-sim provision`) and the conformance suite can reuse one definition.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The type of a column, as named in a data profile's `columns[].type` (DES-PROF-2): the
/// gateway's own type, so the simulator and the gateway cannot disagree on the spelling.
pub use gateway::profile::ColumnType;

/// One column of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Machine name (ASCII snake case), used in data profiles and masking rules (DES-PROF-2).
    pub name: &'static str,
    /// Header label as the legacy system writes it in the CSV header row (Japanese).
    pub label: &'static str,
    /// Value type (DES-PROF-2).
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Unit of a numeric value (`mm`, `m`, `m3`, `JPY`), if any (DES-PROF-2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// Whether the column holds personal data that must be masked (SEC-MASK-1).
    pub personal: bool,
}

const fn col(
    name: &'static str,
    label: &'static str,
    ty: ColumnType,
    unit: Option<&'static str>,
    personal: bool,
) -> Column {
    Column {
        name,
        label,
        ty,
        unit,
        personal,
    }
}

const PIPE_LEDGER: &[Column] = &[
    col("pipe_id", "管路ID", ColumnType::String, None, false),
    col("material", "管種", ColumnType::String, None, false),
    col(
        "diameter_mm",
        "口径",
        ColumnType::Integer,
        Some("mm"),
        false,
    ),
    col("install_year", "布設年度", ColumnType::Integer, None, false),
    col("location", "所在地", ColumnType::String, None, false),
    col("length_m", "延長", ColumnType::Decimal, Some("m"), false),
];

const BILLING: &[Column] = &[
    col("customer_no", "お客様番号", ColumnType::String, None, false),
    col("name", "氏名", ColumnType::String, None, true),
    col("address", "住所", ColumnType::String, None, true),
    col("meter_id", "メーター番号", ColumnType::String, None, false),
    col("billing_month", "請求年月", ColumnType::Date, None, false),
    col(
        "usage_m3",
        "使用水量",
        ColumnType::Integer,
        Some("m3"),
        false,
    ),
    col(
        "amount_jpy",
        "請求金額",
        ColumnType::Integer,
        Some("JPY"),
        false,
    ),
];

const METER_READING: &[Column] = &[
    col("meter_id", "メーター番号", ColumnType::String, None, false),
    col("read_at", "検針日時", ColumnType::Datetime, None, false),
    col("reading_m3", "指針", ColumnType::Decimal, Some("m3"), false),
    col("reader", "検針員", ColumnType::String, None, false),
];

/// A kind of CSV file the simulated legacy system sends (DES-ID-3 dataset names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    /// 管路台帳: the pipe ledger of the ledger (台帳) system.
    PipeLedger,
    /// 料金: monthly bills of the billing (料金) system; name and address are personal.
    Billing,
    /// 検針: meter readings.
    MeterReading,
}

impl Dataset {
    /// Every dataset, in a fixed order.
    pub const ALL: [Dataset; 3] = [Self::PipeLedger, Self::Billing, Self::MeterReading];

    /// The dataset name (`pipe_ledger`, `billing`, `meter_reading`), a valid DES-ID-3 value.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::PipeLedger => "pipe_ledger",
            Self::Billing => "billing",
            Self::MeterReading => "meter_reading",
        }
    }

    /// The name of the legacy system that produces this dataset (a profile's `sourceSystem`).
    #[must_use]
    pub fn source_system(self) -> &'static str {
        match self {
            Self::PipeLedger => "ledger",
            Self::Billing | Self::MeterReading => "billing",
        }
    }

    /// The columns, in CSV order.
    #[must_use]
    pub fn columns(self) -> &'static [Column] {
        match self {
            Self::PipeLedger => PIPE_LEDGER,
            Self::Billing => BILLING,
            Self::MeterReading => METER_READING,
        }
    }

    /// Names of the personal columns (the default masking rule for this dataset, SEC-MASK-1).
    #[must_use]
    pub fn personal_columns(self) -> Vec<&'static str> {
        self.columns()
            .iter()
            .filter(|c| c.personal)
            .map(|c| c.name)
            .collect()
    }
}

/// A serializable description of a dataset, for provisioning files and reports (DES-PROF-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetInfo {
    /// Dataset name (DES-ID-3).
    pub name: &'static str,
    /// Producing legacy system (a profile's `sourceSystem`).
    pub source_system: &'static str,
    /// Columns in CSV order.
    pub columns: &'static [Column],
    /// Names of the personal columns, to be masked (SEC-MASK-1).
    pub personal_columns: Vec<&'static str>,
}

impl Dataset {
    /// The dataset's description as one value.
    #[must_use]
    pub fn info(self) -> DatasetInfo {
        DatasetInfo {
            name: self.name(),
            source_system: self.source_system(),
            columns: self.columns(),
            personal_columns: self.personal_columns(),
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dataset name that is none of [`Dataset::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dataset {0:?} (expected pipe_ledger, billing or meter_reading)")]
pub struct UnknownDataset(pub String);

impl FromStr for Dataset {
    type Err = UnknownDataset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| UnknownDataset(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_billing_name_and_address_are_personal() {
        assert_eq!(Dataset::Billing.personal_columns(), vec!["name", "address"]);
        assert!(Dataset::PipeLedger.personal_columns().is_empty());
        assert!(Dataset::MeterReading.personal_columns().is_empty());
    }

    #[test]
    fn dataset_names_round_trip_and_unknown_names_are_refused() {
        for d in Dataset::ALL {
            assert_eq!(d.name().parse::<Dataset>().unwrap(), d);
        }
        assert!("ledger".parse::<Dataset>().is_err());
    }

    #[test]
    fn dataset_info_lists_columns_in_csv_order_with_the_personal_ones() {
        let v = serde_json::to_value(Dataset::Billing.info()).unwrap();
        assert_eq!(v["name"], "billing");
        assert_eq!(v["sourceSystem"], "billing");
        assert_eq!(v["columns"].as_array().unwrap().len(), 7);
        assert_eq!(v["columns"][1]["name"], "name");
        assert_eq!(v["personalColumns"], serde_json::json!(["name", "address"]));
    }

    #[test]
    fn column_description_serializes_with_profile_type_names() {
        let json = serde_json::to_value(Dataset::Billing.columns()[5]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name":"usage_m3","label":"使用水量","type":"integer","unit":"m3","personal":false})
        );
    }
}
