//! The cases (docs/conformance.md lists them with their requirement and DES IDs). Each runs in
//! a fresh [`Ctx`]: its own gateway identity, platform and wire log; the gateway is started by
//! the case. Timers are the platform's (monitor 2 s, ack timeout 2 s) and the periodic interval
//! the case sends (1 s), never sleeps standing in for them.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use gateway::protocol::ids::SeqRange;
use gateway::protocol::message::{AnomalyKind, HealthState, ProfileFormat, ResultCode};
use gateway::store::CrashPoint;
use legacy_sim::bad::{self, BadKind, BadOptions};
use legacy_sim::push::{RetryPolicy, Session};
use platform_sim::ops::{
    EnvelopeAttack, FaultConfig, JoseAttack, OperatorCommand, PemAttack, ReplyAttack,
};
use platform_sim::platform::WireEvent;

use crate::case::{Case, CaseFuture, Level, Needs};
use crate::world::{ACK_TIMEOUT_SEC, Ctx, Look, QUICK_ACK_TIMEOUT_SEC, WAIT, is_session};

/// The smoke selection (`sgw-conformance run --smoke`): one or two cases of each area, under
/// a minute on a 2-core machine.
pub const SMOKE: &[&str] = &[
    "CONN-OK",
    "CERT-FETCH",
    "PSEND-JSON",
    "PSTOP-OK",
    "RESEND-SEQ",
    "PSTART-TAMPERED",
    "PSTART-JOSE-ALG-NONE",
    "PSTART-STALE",
    "FTP-PLAIN-REFUSED",
    "FTP-WRONG-COLUMN-COUNT",
    "FTP-OVERSIZED",
    "KEY-PERMS",
];

/// The suite's fast cases over the protocol core and the store, about 90 s in process: the
/// test `cargo mutants` runs against mutants of `gateway/src/protocol/gateway_side.rs` and
/// `gateway/src/store/` (docs/conformance.md, "Mutation testing"; the ignored test
/// `the_reference_gateway_passes_the_core_selection` in `conformance/tests/suite.rs`).
pub const CORE: &[&str] = &[
    "PSTART-OK",
    "PSTART-DUPLICATED",
    "PSTART-STALE",
    "PSTART-REPLAYED",
    "PSTART-REPLAYED-AFTER-RESTART",
    "PSTART-UNKNOWN-DATASET",
    "PSEND-JSON",
    "PSEND-DATASETS",
    "PSTOP-OK",
    "RESEND-SEQ",
    "ACK-WITHHELD",
    "LINK-LOSS",
    "LOSSY-DOWNLINK",
    "FTP-DUPLICATE",
    "IDS-UNIQUE",
    "MON-FACTS",
    "DATA-REFUSED",
    "STORE-QUOTA",
    "EVAC-ARCHIVE",
    "EVAC-ARCHIVE-FORGED",
    "EVAC-UNACKED",
    "PSTART-ENV-VERSION-2",
    "PSTART-ENV-FOREIGN-GATEWAY-ID",
    "PSTART-OLD-COMMAND-SEQ",
    "PSTART-RESULT-UNACKED",
    "DATA-ACK-LONG-REASON",
    "DATA-ACK-OTHER-RANGE",
    "DATA-ACK-BUSY",
    "CONNECT-BACKOFF",
    "CONNECT-REFUSED-LASTING",
    "FTP-RECORD-AT-LIMIT",
    "DATA-SPLIT",
    "ANOMALY-OFFLINE",
    "RESEND-BUSY",
    "RESEND-TIME",
    "RESEND-UNKNOWN-DATASET",
    "PSTOP-ENV-VERSION-2",
    "RESEND-ENV-VERSION-2",
    "CRASH-INGEST",
    "CRASH-SENDING",
    "CRASH-EVACUATION",
];

/// The DES rules of docs/protocol.md that no case checks, each with the reason. The report's
/// coverage matrix lists every DES rule with its cases, or with this reason; the suite's own
/// tests fail if a rule has neither, or both (docs/conformance.md, "Coverage of the DES rules").
pub const RULES_WITHOUT_A_CASE: &[(&str, &str)] = &[
    (
        "DES-CERT-5",
        "the platform's side: the broker and the HTTPS endpoint refuse a revoked gateway at the \
         handshake (platform-sim's tests)",
    ),
    (
        "DES-CSV-5",
        "not observable as such: the order of the ingest steps inside one transaction; their \
         outcomes are the DES-CSV-1/2/4, DES-MASK-4 and DES-FTP-6 cases'",
    ),
    (
        "DES-MQTT-9",
        "the platform's and the broker's side (docs/conformance.md, the suite's world)",
    ),
    (
        "DES-MSG-RS-4",
        "the platform's side (gap detection; its resends are what DATA-REFUSED and \
         LOSSY-DOWNLINK see)",
    ),
];

/// Every case, in report order.
pub fn all() -> Vec<Case> {
    let mut v = vec![
        Case {
            id: "CONN-OK",
            requirements: &["IF-CONN-1", "SM-MUTUAL", "MON-1"],
            // The sending side of the envelope, topic and version rules: the platform opens
            // and decodes `connect` by the strict receiving rules; a violation is refused and
            // no session starts.
            rules: &[
                "DES-MSG-CONN-1",
                "DES-MSG-CONN-3",
                "DES-MSG-MON-2",
                "DES-MQTT-1",
                "DES-MQTT-3",
                "DES-MSG-1",
                "DES-ENV-1",
                "DES-ENV-2",
                "DES-ENV-3",
                "DES-ENV-4",
                "DES-VER-1",
                "DES-VER-4",
            ],
            level: Level::Must,
            negative: false,
            description: "start the gateway; it connects over mutual TLS and sends `connect`",
            expectation: "`connect` answered OK by the platform; the gateway's next message is \
                          `monitor.status` (DES-MSG-CONN-3)",
            needs: Needs::OWN,
            run: conn_ok,
        },
        Case {
            id: "DISC-OK",
            requirements: &["IF-DISC-1"],
            rules: &["DES-MSG-DISC-1"],
            level: Level::Must,
            negative: false,
            description: "stop the gateway cleanly (SIGTERM or its shutdown)",
            expectation: "it sends `disconnect`, answered OK by the platform",
            needs: Needs::OWN,
            run: disc_ok,
        },
        Case {
            id: "CERT-FETCH",
            requirements: &["IF-CERT-1", "SEC-CERT-1"],
            rules: &["DES-CERT-1", "DES-CERT-3"],
            level: Level::Must,
            negative: false,
            description: "start the gateway and watch the platform's HTTPS certificate endpoint",
            expectation: "the gateway fetches the root certificate, the platform certificate and \
                          the CRL over mutual TLS, as itself, and opens its session",
            needs: Needs::OWN,
            run: cert_fetch,
        },
        Case {
            id: "FTP-PLAIN-REFUSED",
            requirements: &["SM-TLS", "SC-FTP-1"],
            rules: &["DES-FTP-2"],
            level: Level::Must,
            negative: true,
            description: "a legacy system logs in over plain FTP (no AUTH TLS) with the right \
                          password",
            expectation: "refused 530 or 534 (`ftps_required = true`, the default): passwords \
                          and rows never travel in clear",
            needs: Needs::NONE,
            run: ftp_plain_refused,
        },
        Case {
            id: "PSTART-OK",
            requirements: &[
                "IF-PSTART-1",
                "IF-PSTART-3",
                "IF-PSTART-4",
                "SC-START-1",
                "SEC-JSON-ENC-2",
            ],
            rules: &["DES-MSG-PS-1", "DES-MSG-PS-3", "DES-FTP-6"],
            level: Level::Must,
            negative: false,
            description: "an upload before any start, then `periodic.start` (interval 1 s, all \
                          datasets, JSON), then an upload",
            expectation: "450 before the start (storing stopped); `periodic.start.result` OK with \
                          the running state; 226 after it",
            needs: Needs::NONE,
            run: pstart_ok,
        },
        Case {
            id: "PSEND-JSON",
            requirements: &[
                "IF-PSEND-1",
                "IF-PSEND-2",
                "IF-PSEND-3",
                "SC-FTP-1",
                "SC-ACQ-1",
                "SEC-MASK-1",
                "SEC-JSON-SIG-1",
                "SEC-JSON-ENC-1",
                "SEC-MASK-2",
            ],
            rules: &[
                "DES-FTP-6",
                "DES-MSG-DATA-1",
                "DES-MASK-1",
                "DES-MASK-2",
                "DES-MASK-4",
                "DES-PROF-1",
                "DES-PROF-2",
                "DES-PROF-3",
                "DES-PROF-4",
            ],
            level: Level::Must,
            negative: false,
            description: "upload 30 billing rows over FTPS while periodic sending runs (JSON)",
            expectation: "226; the platform opens and verifies data carrying exactly the 30 rows; \
                          unmasked columns equal the CSV, masked columns are not in clear and \
                          unmask with the utility's key (only the gateway's bundle has it) to \
                          exactly the uploaded values",
            needs: Needs::NONE,
            run: psend_json,
        },
        Case {
            id: "PSEND-DATASETS",
            requirements: &["IF-PSEND-1", "SC-ACQ-1", "IF-RESEND-1", "ST-PROVIDE-1"],
            rules: &[
                "DES-ID-4",
                "DES-MSG-DATA-1",
                "DES-MSG-RS-2",
                "DES-MSG-RS-3",
                "DES-MASK-4",
            ],
            level: Level::Must,
            negative: false,
            description: "upload files of three datasets in turn (pipe_ledger 3 rows, billing 4, \
                          meter_reading 3, pipe_ledger 2) while periodic sending runs; then \
                          `resend.request` of all 12 seqs, and of the same range for pipe_ledger \
                          only",
            expectation: "seqs 1..=12 in upload order; every record reaches the platform in a \
                          data message of its own dataset, as uploaded (masked columns masked \
                          and unmasking to the upload); the resend is OK with 12 records in 4 \
                          messages, exactly the four files' runs each with its dataset; the \
                          pipe_ledger resend OK (not PARTIAL) with 5 records in 2 messages, \
                          1..=3 and 11..=12",
            needs: Needs::NONE,
            run: psend_datasets,
        },
        Case {
            id: "PSEND-XML",
            requirements: &[
                "IF-PSEND-1",
                "SEC-XML-SIG-1",
                "SEC-XML-ENC-1",
                "SEC-XML-SIG-2",
                "SEC-XML-ENC-2",
                "SEC-MASK-1",
            ],
            rules: &["DES-PROF-1", "DES-PROF-5", "DES-PROF-6", "DES-PROF-7"],
            level: Level::Must,
            negative: false,
            description: "as PSEND-JSON with the XML profile format",
            expectation: "the platform opens the XML profiles by the strict receiving procedure \
                          of DES-PROF-7 (key unwrapped, decrypted, signature verified with the \
                          gateway's certificate) and finds exactly the rows",
            needs: Needs {
                xml: true,
                ..Needs::NONE
            },
            run: psend_xml,
        },
        Case {
            id: "PSTOP-OK",
            requirements: &["IF-PSTOP-1", "SC-STOP-1"],
            rules: &["DES-MSG-PS-2", "DES-MSG-DATA-4", "DES-FTP-6"],
            level: Level::Must,
            negative: false,
            description: "start (every 5 s), an upload of 3 rows, then `periodic.stop` before \
                          the first send (the platform's messages then dropped until 6.5 s after \
                          the start), then an upload",
            expectation: "`periodic.stop.result` OK; the second upload is refused 450; no \
                          periodic data is sent while stopped (the records stored before the \
                          stop reach the platform by its resend request once messages flow)",
            needs: Needs::NONE,
            run: pstop_ok,
        },
        Case {
            id: "ACK-WITHHELD",
            requirements: &["IF-PSEND-3", "SM-RESEND", "ST-STORE-1"],
            rules: &["DES-MSG-DATA-2", "DES-MSG-DATA-3"],
            level: Level::Must,
            negative: true,
            description: "the platform withholds every `data.ack`, then acknowledges again",
            expectation: "the gateway sends the same data message again (same messageId), not \
                          before `ackTimeoutSec` (half of it at least by arrival times), until \
                          acknowledged; every record is stored once",
            needs: Needs::NONE,
            run: ack_withheld,
        },
        Case {
            id: "RESEND-SEQ",
            requirements: &["IF-RESEND-1", "ST-PROVIDE-1"],
            rules: &["DES-MSG-RS-1", "DES-MSG-RS-2", "DES-MSG-PS-5"],
            level: Level::Must,
            negative: false,
            description: "after 12 records are acknowledged, `resend.request` seq 3..=7, then \
                          seq 11..=15 (beyond `lastSeq` 12)",
            expectation: "`resend.result` OK (5 records) and resend data covering exactly 3..=7; \
                          then PARTIAL (2 records) and resend data covering exactly 11..=12; \
                          each `resend.result` sent once (it waits for no `ack`, DES-MSG-PS-5)",
            needs: Needs::NONE,
            run: resend_seq,
        },
        Case {
            id: "RESEND-TIME",
            requirements: &["IF-RESEND-1", "ST-PROVIDE-1"],
            rules: &["DES-MSG-RS-1", "DES-MSG-RS-2", "DES-MSG-RS-3"],
            level: Level::Must,
            negative: false,
            description: "3 records uploaded, then — from the next whole second t0 — 4 more, \
                           answered by t1 (the whole second after); `resend.request` by `time` \
                           2000-01-01T00:00:00Z..=2000-01-02T00:00:00Z, then by `time` t0..=t1",
            expectation: "NOT_FOUND with `records` 0 and no resend data; then OK with `records` \
                          4 and resend data covering exactly the 4 records ingested in t0..=t1 \
                          (DES-MSG-RS-1: records whose ingest time is in the range, inclusive)",
            needs: Needs::NONE,
            run: resend_time,
        },
        Case {
            id: "RESEND-UNKNOWN-DATASET",
            requirements: &["IF-RESEND-1", "ST-PROVIDE-1"],
            rules: &["DES-MSG-RS-2"],
            level: Level::Must,
            negative: true,
            description: "after 3 records are acknowledged, `resend.request` of their seqs for a \
                          dataset the gateway was not provisioned with (`no_such_dataset`), then \
                          for `billing`",
            expectation: "`resend.result` UNKNOWN_DATASET with the body {0,0,0} and no resend data \
                          for it (DES-MSG-RS-2: the first row of its table wins over a range that \
                          holds records); then OK with 3 records and resend data covering exactly \
                          them",
            needs: Needs::NONE,
            run: resend_unknown_dataset,
        },
        Case {
            id: "MON-FACTS",
            requirements: &["MON-1"],
            rules: &["DES-MSG-MON-1"],
            level: Level::Must,
            negative: false,
            description: "two uploads (5 and 7 rows) while sending runs",
            expectation: "a later `monitor.status` has lastSeq 12, health `ok` (nothing in \
                          this world degrades it), storage.records 12 with bytes > 0, unacked 0 \
                          and held 0, filesAccepted 2, recordsAcked 12, messagesSent ≥ 1 and the \
                          expiries of tls-client, data-protection, platform, root and crl",
            needs: Needs::OWN,
            run: mon_facts,
        },
    ];
    v.push(Case {
        id: "CRASH-INGEST",
        requirements: &["ST-STORE-1", "SC-FTP-1", "IF-PSEND-3"],
        rules: &[
            "DES-FTP-6",
            "DES-ID-4",
            "DES-MSG-DATA-3",
            "DES-MSG-DATA-6",
            "DES-MSG-RS-1",
        ],
        level: Level::Must,
        negative: true,
        description: "kill -9 the gateway at random points (seeded) while uploads stream in and \
                      data goes out, 5 times, then twice right after an upload's commit (where \
                      the target offers crash points, the in-process gateway: before it saves \
                      what it indexed of the file; otherwise the moment the upload is answered \
                      226), restarting it each time",
        expectation: "every upload answered 226 reaches the platform whole; no row reaches it \
                      twice; no file in part; the last two files (6 rows, two data messages \
                      each at `max_records_per_message` 4; the last one's rows about 40 000 \
                      bytes wide, so three messages by the byte bound of DES-MSG-DATA-6) each \
                      sent again by the periodic send after the restart (DES-MSG-DATA-3), not \
                      only resent on the platform's request; a resend by time over the whole seconds of the last two uploads \
                      serves exactly their records (their ingest time kept across the crash)",
        needs: Needs {
            kill: true,
            patient_gaps: true,
            ..Needs::OWN
        },
        run: crash_ingest,
    });
    v.push(Case {
        id: "CRASH-EVACUATION",
        requirements: &["ST-EVAC-1", "ST-STORE-1", "ST-PROVIDE-1"],
        rules: &["DES-EVAC-4", "DES-EVAC-5", "DES-EVAC-6"],
        level: Level::Must,
        negative: true,
        description: "`retention_days` 0, `evacuation_interval_sec` 1: 6 records uploaded and \
                      acknowledged are evacuated, and the gateway dies right after the archive's \
                      store transaction (DES-EVAC-4 step 3; where the target offers crash \
                      points, the in-process gateway: before it saves the record index that \
                      marks them archived; otherwise killed the moment the archive's index line \
                      appears); restarted, then `resend.request` of 1..=6",
        expectation: "after the restart a `monitor.status` counts the 6 records evacuated \
                      (`storage.evacuated` 6, `records` 0); none is sent again unasked; the \
                      resend answers OK with `records` 6, `archived` 6 and sends them, as \
                      archived and as the platform first received them",
        needs: Needs {
            kill: true,
            ..Needs::OWN
        },
        run: crash_evacuation,
    });
    v.push(Case {
        id: "CRASH-SENDING",
        requirements: &["ST-STORE-1", "IF-PSEND-3", "SM-RESEND"],
        rules: &["DES-MSG-DATA-3", "DES-ID-4", "DES-MSG-DATA-1"],
        level: Level::Must,
        negative: true,
        description: "kill -9 the gateway while a file's data message is unacknowledged (lost on \
                      its way: platform-sim fault `lose-data`, so the platform holds none of it), \
                      restart it; then kill -9 it again as the platform's `data.ack` for a second \
                      file goes out, restart it",
        expectation: "after each restart every record of both files ends acknowledged \
                      (`storage.unacked` 0) and at the platform exactly once, under the seqs it \
                      got at ingest (the lost message's range; file n's row i at its seq): \
                      nothing sent but unacknowledged is forgotten at a crash",
        needs: Needs {
            kill: true,
            ..Needs::OWN
        },
        run: crash_sending,
    });
    v.push(Case {
        id: "PSTART-DUPLICATED",
        requirements: &["IF-PSTART-1", "SM-RESEND"],
        rules: &["DES-ENV-8", "DES-MSG-PS-1"],
        level: Level::Must,
        negative: true,
        description: "every `periodic.start` is delivered twice (same message)",
        expectation: "both copies get the same result (the reply memory), applied once",
        needs: Needs::OWN,
        run: pstart_duplicated,
    });
    v.push(Case {
        id: "PSTART-UNKNOWN-DATASET",
        requirements: &["IF-PSTART-1", "IF-PSTART-4"],
        rules: &["DES-MSG-PS-1", "DES-RC-1"],
        level: Level::Must,
        negative: true,
        description: "`periodic.start` naming a dataset the gateway does not have",
        expectation: "`periodic.start.result` UNKNOWN_DATASET; nothing started (an upload is \
                      still refused 450)",
        needs: Needs::NONE,
        run: pstart_unknown_dataset,
    });
    const FORGED: &[&str] = &["IF-PSTART-2", "SEC-JSON-SIG-2", "SEC-CERT-2", "SM-SIG"];

    for (id, fault, requirements, rules) in [
        (
            "PSTART-TAMPERED",
            Fault::Tampered,
            FORGED,
            &["DES-SEAL-3", "DES-SEAL-5", "DES-MSG-AN-1"][..],
        ),
        (
            "PSTART-UNSIGNED",
            Fault::Unsigned,
            FORGED,
            &["DES-SEAL-3", "DES-SEAL-5", "DES-MSG-AN-1"][..],
        ),
        (
            "PSTART-EXPIRED-CERT",
            Fault::Expired,
            &[
                "IF-PSTART-2",
                "SEC-JSON-SIG-2",
                "SEC-CERT-2",
                "SM-SIG",
                "SM-CERTEXP",
            ][..],
            &[
                "DES-CERT-3",
                "DES-CERT-4",
                "DES-SEAL-5",
                "DES-SEAL-6",
                "DES-MSG-AN-1",
            ][..],
        ),
        (
            "PSTART-REVOKED-CERT",
            Fault::Revoked,
            FORGED,
            &[
                "DES-CERT-3",
                "DES-CERT-4",
                "DES-SEAL-5",
                "DES-SEAL-6",
                "DES-MSG-AN-1",
            ][..],
        ),
    ] {
        v.push(Case {
            id,
            requirements,
            rules,
            level: Level::Must,
            negative: true,
            description: fault.description(),
            expectation: fault.expectation(),
            // The offered certificate is fetched by the DES-SEAL-6 refresh, at most one per
            // 5 minutes: an earlier case may have used it up on a running gateway.
            needs: if fault.offers_cert() {
                Needs::OWN
            } else {
                Needs::NONE
            },
            run: forged_case,
        });
    }
    v.push(Case {
        id: "PSTOP-HELD-CERT-REVOKED",
        requirements: &[
            "SEC-CERT-2",
            "IF-PSTART-2",
            "SM-SIG",
            "SEC-JSON-SIG-2",
            "SM-AUDIT",
        ],
        rules: &[
            "DES-CERT-3",
            "DES-CERT-4",
            "DES-SEAL-6",
            "DES-CERT-7",
            "DES-CERT-8",
            "DES-MSG-AN-1",
            "DES-MSG-AN-2",
        ],
        level: Level::Must,
        negative: true,
        description: "with `crl_refresh_sec` 1, the platform's data-protection certificate — the \
                      one the gateway holds — is revoked (a compromised key) and the platform \
                      sends `periodic.stop` signed with it; then it gets a new certificate",
        expectation: "once the gateway has fetched the CRL that lists it, the stop under the \
                      revoked certificate is not acted on (an upload is still accepted) and not \
                      answered; the platform's retry under its new certificate is applied \
                      (`periodic.stop.result` OK); the reports the gateway could not seal \
                      meanwhile arrive once it holds the new certificate (DES-CERT-8): the \
                      refused stop (anomaly `security`, IF-PSTART-2) and the episode itself \
                      (anomaly `certificate`, DES-CERT-8); the data given up meanwhile was \
                      held and arrives (all 3 records acknowledged)",
        needs: Needs::OWN_ALONE,
        run: pstop_held_cert_revoked,
    });
    v.push(Case {
        id: "PLATFORM-CERT-EXPIRES",
        requirements: &["SEC-CERT-2", "SM-CERTEXP", "IF-CERT-1", "SM-AUDIT"],
        rules: &[
            "DES-CERT-3",
            "DES-CERT-4",
            "DES-CERT-8",
            "DES-SEAL-6",
            "DES-MSG-AN-2",
        ],
        level: Level::Must,
        negative: true,
        description: "the platform's data-protection certificate the gateway fetches at start \
                      expires 12 s later (the platform renews it late); 3 records are uploaded \
                      while the gateway can seal nothing; then the platform gets a new \
                      certificate and sends `periodic.stop` signed with it",
        expectation: "when the held certificate expires the gateway fetches `platform.pem` at \
                      once (DES-CERT-8 (2)) and not again for the next 8 s although its status \
                      (every 2 s) and data cannot be sealed (at most once per 5 minutes); the \
                      upload is accepted; the stop under the new certificate is applied \
                      (unknown `kid`, DES-SEAL-6: a refresh of its own) and answered OK; the \
                      episode is then reported (anomaly `certificate`, DES-CERT-8) and the 3 \
                      records held meanwhile arrive",
        needs: Needs::OWN_ALONE,
        run: platform_cert_expires,
    });
    v.push(Case {
        id: "PLATFORM-CERT-ROTATED",
        requirements: &["SM-CERTEXP", "IF-CERT-1", "SEC-CERT-2", "ST-STORE-1"],
        rules: &["DES-SEAL-6", "DES-CERT-3", "DES-CERT-4", "DES-MSG-DATA-2"],
        level: Level::Must,
        negative: false,
        description: "mid-flow the platform replaces its data-protection certificate (new key, \
                      new `kid`); its acknowledgements and commands are signed with the new one \
                      from then on",
        expectation: "at the first message under the unknown `kid` the gateway fetches \
                      `platform.pem` once, installs the new certificate and opens the message \
                      again: data before and after the rotation acknowledged, a stop under the \
                      new certificate answered OK, no `anomaly` of kind `security`",
        needs: Needs::OWN_ALONE,
        run: platform_cert_rotated,
    });
    v.push(Case {
        id: "PSTART-RESULT-UNACKED",
        requirements: &["IF-PSTART-4", "SM-RESEND"],
        rules: &["DES-MSG-PS-5"],
        level: Level::Must,
        negative: true,
        description: "the platform withholds every `ack` (and `data.ack`) while it starts \
                      periodic sending (`ackTimeoutSec` 2)",
        expectation: "the gateway sends its `periodic.start.result` 6 times in all, the same \
                      messageId each time (5 re-sends, each after `ackTimeoutSec` without an \
                      `ack`: re-send k no earlier than k times it, less half of it, after the \
                      first), then reports an `anomaly` of kind \
                      `malformed` rule DES-MSG-PS-5 and keeps the state: sending started (an \
                      upload is accepted and, once acknowledgements flow, delivered)",
        needs: Needs::NONE,
        run: pstart_result_unacked,
    });
    v.push(Case {
        id: "PSTART-STALE",
        requirements: &["IF-PSTART-2", "SM-SIG", "SM-THRESHOLD"],
        rules: &["DES-ENV-7", "DES-MSG-AN-1"],
        level: Level::Must,
        negative: true,
        description: "`periodic.start` correctly sealed but with a `timestamp` 600 s in the past",
        expectation: "`periodic.start.result` STALE; an `anomaly` of kind `stale`; nothing \
                      started (an upload is still refused 450)",
        needs: Needs::NONE,
        run: pstart_stale,
    });
    v.push(Case {
        id: "PSTART-REPLAYED",
        requirements: &["IF-PSTART-1", "IF-PSTOP-1", "SM-SIG"],
        rules: &["DES-ENV-8", "DES-MSG-PS-2"],
        level: Level::Must,
        negative: true,
        description: "after an accepted start and stop, the start is sent again byte for byte \
                      (a replay within the reply memory's 600 s)",
        expectation: "answered from the reply memory: the start's `periodic.start.result` \
                      re-sent unchanged (its original messageId, OK); not applied again: an \
                      upload afterwards is still refused 450 and no data follows the stop",
        needs: Needs::NONE,
        run: pstart_replayed,
    });
    v.push(Case {
        id: "PSTART-REPLAYED-AFTER-RESTART",
        requirements: &["IF-PSTART-1", "IF-PSTOP-1", "SM-SIG"],
        rules: &["DES-ENV-8", "DES-MSG-PS-2"],
        level: Level::Must,
        negative: true,
        description: "an accepted start; the gateway is stopped and started again; a stop; then \
                      the start is sent again byte for byte (within the reply memory's 600 s)",
        expectation: "the reply memory came back with the gateway's state: the start's \
                      `periodic.start.result` re-sent unchanged (original messageId, OK), the \
                      start not applied again (an upload refused 450, no data after the stop)",
        needs: Needs::OWN,
        run: pstart_replayed_after_restart,
    });
    v.push(Case {
        id: "IDS-UNIQUE",
        requirements: &["SM-ID", "IF-CONN-1", "ST-STORE-1"],
        rules: &[
            "DES-ID-1",
            "DES-ID-2",
            "DES-ID-4",
            "DES-ID-5",
            "DES-MSG-CONN-4",
        ],
        level: Level::Must,
        negative: false,
        description: "two boots of the gateway, each sending data (4 records before a clean \
                      restart, all acknowledged; 4 after)",
        expectation: "the records after the restart get seqs 5..=8 (DES-ID-4: never reused, \
                      also across restarts) and all 8 reach the platform; every uplink's \
                      messageId is DES-ID-2 text and names one message only (a repeated ID is a \
                      retransmission of the same message), across the restart",
        needs: Needs::OWN,
        run: ids_unique,
    });
    v.push(Case {
        id: "SEAL-FRESH-KEY",
        requirements: &["SM-DATAENC", "SEC-JSON-ENC-1", "IF-PSEND-2"],
        rules: &["DES-SEAL-1", "DES-SEAL-3"],
        level: Level::Must,
        negative: false,
        description: "two uploads, so several data, status and result messages go up",
        expectation: "every uplink is a JWE with `alg` RSA-OAEP-256 and `enc` A128CBC-HS256 and \
                      its own content key (no two messages share an encrypted key)",
        needs: Needs::NONE,
        run: seal_fresh_key,
    });
    v.push(Case {
        id: "MON-INTERVAL",
        requirements: &["MON-2", "MON-1"],
        rules: &["DES-MSG-MON-2", "DES-MSG-CONN-2"],
        level: Level::Should,
        negative: false,
        description: "the platform's `connect.result` sets `monitorIntervalSec` 2",
        expectation: "`monitor.status` arrives every 2 s (after the first, four in a row: \
                      1.5–2.5 s apart on average, none more than 4 s after the one before) and \
                      the platform's operator view shows the latest",
        needs: Needs::NONE,
        run: mon_interval,
    });
    v.push(Case {
        id: "KEY-PERMS",
        requirements: &["SEC-CERT-3"],
        rules: &["DES-PROV-1"],
        level: Level::Must,
        negative: true,
        description: "the gateway's data-protection private key made readable by group and \
                      others (0644), then the gateway started",
        expectation: "it refuses to run (its start fails or its process exits; it never \
                      connects); with 0600 again it connects",
        needs: Needs::OWN,
        run: key_perms,
    });
    v.push(Case {
        id: "FTP-DEFAULT-CREDENTIALS",
        requirements: &["SM-DEFAULTPW", "SC-FTP-1"],
        rules: &["DES-FTP-1", "DES-FTP-3"],
        level: Level::Should,
        negative: true,
        description: "FTPS logins with factory-default and guessable credentials: anonymous, \
                      ftp/ftp, admin/admin, the dataset's user with its own name and with \
                      `password`",
        expectation: "each refused 530; the dataset's real password still works (226)",
        needs: Needs::NONE,
        run: ftp_default_credentials,
    });
    v.push(Case {
        id: "FTP-COMMANDS-REFUSED",
        requirements: &["SM-PORTS", "SC-FTP-1", "SM-ACL"],
        rules: &["DES-FTP-1", "DES-FTP-4"],
        level: Level::Should,
        negative: true,
        description: "after login, commands that need no data connection: `PORT` (active \
                      mode), `EPRT`, `DELE`, `MKD`, `RMD`, `RNFR`, `SITE`",
        expectation: "each refused with a 5xx reply (DES-FTP-1: 502 recommended, a library's \
                      500 or 550 for a name that does not exist also refuse; a legacy system can \
                      only upload); an upload still works",
        needs: Needs::NONE,
        run: ftp_commands_refused,
    });
    v.push(Case {
        id: "FTP-RECORD-AT-LIMIT",
        requirements: &["SC-ACQ-1", "SC-FTP-1", "IF-PSEND-3"],
        rules: &["DES-MSG-DATA-6", "DES-FTP-6"],
        level: Level::Must,
        negative: true,
        description: "four one-row billing files whose record has a wire size (DES-MSG-DATA-6) \
                      of exactly 65 536 bytes, then 65 537, in its JSON encoding (backslashes, \
                      2 bytes each), then the same in its XML encoding (`&`, 5 bytes as \
                      `&amp;`); the row is measured first from a calibration file's record as \
                      the platform received it (the masked columns' length)",
        expectation: "reply codes 226, 552, 226, 552: a record of exactly `MAX_RECORD_BYTES` \
                      is taken, one byte more is refused whole, whichever encoding is the \
                      larger; the two records at the limit are delivered as uploaded, nothing \
                      of the refused files is stored or sent",
        needs: Needs::NONE,
        run: ftp_record_at_limit,
    });
    v.push(Case {
        id: "ANOMALY-OFFLINE",
        requirements: &["MON-1", "SC-FTP-1"],
        rules: &["DES-MSG-AN-2", "DES-MSG-CONN-3", "DES-FTP-6"],
        level: Level::Must,
        negative: true,
        description: "the platform answers the gateway's first three `connect`s BUSY; while it \
                      is out of session (before any start) 12 files are uploaded, on one FTP \
                      session",
        expectation: "each upload is refused 450; their `ingest` anomalies, detected out of \
                      session, are kept in the offline queue and sent once the session begins, \
                      subject to the rate limit: exactly 10 arrive, and a `monitor.status` \
                      counts the 12 in `anomalies` and the 2 not sent in `anomaliesDropped` \
                      (DES-MSG-AN-2)",
        needs: Needs::OWN,
        run: anomaly_offline,
    });
    v.push(Case {
        id: "DATA-SPLIT",
        requirements: &["IF-PSEND-1", "IF-PSEND-3", "SC-ACQ-1"],
        rules: &["DES-MSG-DATA-6", "DES-MSG-DATA-1"],
        level: Level::Must,
        negative: false,
        description: "one billing file of 5 records of about 40 000 bytes each (wire size, \
                      DES-MSG-DATA-6): two fit the 114 688 record bytes of a message, three do not",
        expectation: "the 5 records delivered as uploaded; the periodic data messages cover \
                      every seq exactly once, and the wire sizes of each message's records, \
                      measured from the records the platform received, sum to at most 114 688",
        needs: Needs::NONE,
        run: data_split,
    });
    v.push(Case {
        id: "RESEND-BUSY",
        requirements: &["IF-RESEND-1", "SM-RESEND"],
        rules: &["DES-MSG-RS-2", "DES-MSG-RS-3"],
        level: Level::Must,
        negative: true,
        description: "6 records at the platform; acknowledgements withheld; a resend of 1..=6 \
                      (its data goes out and stays unacknowledged), then a second resend of \
                      1..=2; acknowledgements flow again, and once the first resend's data is \
                      acknowledged a third resend of 1..=2",
        expectation: "the first answered OK (6 records); the second BUSY with `records`, \
                      `messages` and `archived` 0 and no data for it; the third, the first \
                      resend finished, OK with 2 records, which are sent",
        needs: Needs::NONE,
        run: resend_busy,
    });
    v.push(Case {
        id: "CRL-ROLLBACK",
        requirements: &["SEC-CERT-2", "IF-CERT-1", "SM-UPDATE"],
        rules: &["DES-CERT-3"],
        level: Level::Must,
        negative: true,
        description: "with `crl_refresh_sec` 1: the CA signs a newer CRL (the next CRL number) \
                      and the gateway installs it; then the certificate endpoint serves the \
                      CRL from before it again (platform-sim fault `stale-crl`: a stale cache, \
                      or an attacker un-revoking a certificate with an older CRL still in its \
                      validity period)",
        expectation: "the older CRL is refused (DES-CERT-3 rollback protection): an anomaly \
                      of kind `certificate`; `monitor.status` keeps listing the newer CRL's \
                      nextUpdate; the gateway goes on working (an upload acknowledged)",
        needs: Needs::OWN,
        run: crl_rollback,
    });
    v.push(Case {
        id: "CERT-ENDPOINT-UNREACHABLE",
        requirements: &["IF-CERT-1", "SEC-CERT-2", "IF-PSEND-3", "IF-PSTOP-1"],
        rules: &["DES-CERT-3"],
        level: Level::Must,
        negative: true,
        description: "with `crl_refresh_sec` 1, once the gateway has fetched the CRL, the \
                      certificate endpoint becomes unreachable (platform-sim fault \
                      `https-unreachable`: every connection closed before TLS) while the \
                      gateway tries three times at least; then it is reachable again",
        expectation: "the gateway keeps the certificates and the CRL it holds (DES-CERT-3): \
                      meanwhile an upload is sealed, delivered and acknowledged, and a stop \
                      and a start are verified and applied; once the endpoint is back, the \
                      CRL is fetched again",
        needs: Needs::OWN,
        run: cert_endpoint_unreachable,
    });
    v.push(Case {
        id: "PSTOP-ENV-VERSION-2",
        requirements: &["IF-PSTOP-1", "SM-THRESHOLD", "SM-AUDIT"],
        rules: &["DES-VER-2", "DES-MSG-2", "DES-MSG-3"],
        level: Level::Must,
        negative: true,
        description: "periodic sending started; then a `periodic.stop` correctly sealed, \
                      `version` 2",
        expectation: "answered UNSUPPORTED_VERSION with the neutral body of a stop — the current \
                      periodic state, still running (DES-MSG-2) —; an `anomaly` of kind \
                      `malformed`; not acted on",
        needs: Needs::NONE,
        run: pstop_env_version_2,
    });
    v.push(Case {
        id: "RESEND-ENV-VERSION-2",
        requirements: &["IF-RESEND-1", "SM-THRESHOLD", "SM-AUDIT"],
        rules: &["DES-VER-2", "DES-MSG-2", "DES-MSG-3"],
        level: Level::Must,
        negative: true,
        description: "3 records acknowledged; then a `resend.request` of them correctly sealed, \
                      `version` 2",
        expectation: "answered UNSUPPORTED_VERSION with the neutral body of a resend's reply, \
                      records, messages and archived 0 (DES-MSG-2); an `anomaly` of kind \
                      `malformed`; not acted on (no resend data for it); then the same records' \
                      correct resend answered OK (not BUSY) and served",
        needs: Needs::NONE,
        run: resend_attack_case,
    });
    v.push(Case {
        id: "DATA-WINDOW",
        requirements: &["IF-PSEND-3", "IF-RESEND-1", "SM-RESEND"],
        rules: &["DES-MSG-DATA-3", "DES-MSG-RS-3", "DES-MSG-DATA-6"],
        level: Level::Must,
        negative: true,
        description: "`max_records_per_message` 1; acknowledgements withheld while 20 records \
                      are due, then while a resend of all 20 runs; then acknowledgements flow",
        expectation: "never more than 8 distinct data messages unacknowledged (periodic, then \
                      resend): the backlog drains as acknowledgements free the window, not as a \
                      flood; afterwards every record arrives and the resend covers 1..=20; \
                      every data message holds one record (DES-MSG-DATA-6)",
        needs: Needs::OWN,
        run: data_window,
    });
    v.push(Case {
        id: "DATA-REFUSED",
        requirements: &["IF-PSEND-3", "SM-RESEND"],
        rules: &["DES-MSG-DATA-2", "DES-MSG-DATA-5", "DES-MSG-DATA-1"],
        level: Level::Must,
        negative: true,
        description: "the platform has not registered `billing` for the gateway: its data is \
                      answered UNKNOWN_DATASET; later `billing` is registered and a resend asked",
        expectation: "the message is given up at once (never sent again) and reported (an \
                      `anomaly` of kind `malformed`, rule DES-MSG-DATA-5, its detail naming \
                      UNKNOWN_DATASET, `billing` and the range), its records held \
                      (`storage.held`); the resend after registration delivers them (that \
                      unacknowledged records are never evacuated is EVAC-UNACKED's to show)",
        needs: Needs::NONE,
        run: data_refused,
    });
    v.push(Case {
        id: "DATA-GIVEN-UP",
        requirements: &["IF-PSEND-3", "SM-RESEND", "ST-STORE-1"],
        rules: &["DES-MSG-DATA-5", "DES-MSG-DATA-3"],
        level: Level::Must,
        negative: true,
        description: "the platform (`ackTimeoutSec` 1) stores a file's data message but keeps \
                      every `data.ack` of it back (platform-sim fault `late-acks`); once the \
                      gateway has given it up, the kept acknowledgements (OK) are sent",
        expectation: "the message is sent 9 times in all, the same messageId, waiting T, 2T, \
                      4T, 8T, 8T, … between them (DES-MSG-DATA-3), then given up: an `anomaly` \
                      of kind `malformed`, rule DES-MSG-DATA-5, naming `billing` and the range, \
                      and its 3 records held (`storage.held` 3); the late OK acknowledges them \
                      (held 0, unacknowledged 0) with no resend asked, at the platform once",
        needs: Needs {
            quick_acks: true,
            ..Needs::OWN_MINUTE
        },
        run: data_given_up,
    });
    v.push(Case {
        id: "STORE-QUOTA",
        requirements: &["ST-STORE-1", "SC-FTP-1", "MON-1"],
        rules: &["DES-FTP-6", "DES-MSG-MON-1"],
        level: Level::Must,
        negative: true,
        description: "files of 2 alike rows: two under the default quota (what one counts in \
                      `storage.bytes`); a restart with the quota at exactly five files; files 3 \
                      to 5, a sixth; a restart with the quota one byte short of six files, the \
                      sixth again; sending runs (acknowledged records stay in primary storage)",
        expectation: "`storage.bytes` is a sum over the stored records (0, one file, twice that); \
                      at 4 files (exactly 80 %) health `ok`, the fifth file filling the quota \
                      exactly is accepted and health is `degraded`; the sixth is refused `452` \
                      when `STOR` arrives at a full store and again by the commit-time check \
                      when it would cross the quota, each an `ingest` anomaly whose detail is \
                      `452 DES-FTP-6: storage quota reached`, nothing of it stored or using a \
                      seq; every accepted file reaches the platform once",
        needs: Needs::OWN,
        run: store_quota,
    });
    v.push(Case {
        id: "LOSSY-DOWNLINK",
        requirements: &["IF-PSEND-3", "SM-RESEND", "ST-STORE-1"],
        rules: &["DES-MSG-DATA-3", "DES-ENV-8", "DES-MSG-DATA-2"],
        level: Level::Must,
        negative: true,
        description: "30 % of the platform's messages are dropped, 30 % duplicated and every \
                      message held back behind the next (reordered) while files of 2 rows are \
                      sent one at a time, until at least one was dropped and one duplicated \
                      (3 to 30 files), and for 6 s after",
        expectation: "every record reaches the platform exactly once, under the faults and \
                      after; once the network heals all are acknowledged (`storage.unacked` 0)",
        needs: Needs::NONE,
        run: lossy_downlink,
    });
    v.push(Case {
        id: "LINK-LOSS",
        requirements: &["IF-CONN-1", "SM-RESEND", "ST-STORE-1", "IF-PSEND-3"],
        // The cut takes the gateway's client ID over at the broker: a gateway whose client ID
        // is not its gateway ID is not cut, and fails (DES-MQTT-2).
        rules: &[
            "DES-MQTT-4",
            "DES-MSG-CONN-1",
            "DES-MSG-DATA-3",
            "DES-MQTT-2",
        ],
        level: Level::Must,
        negative: true,
        description: "the gateway's MQTT connection is cut at the broker twice, each time while \
                      a file's data message is unacknowledged (the platform withholds its \
                      `data.ack` until the cut)",
        expectation: "it reconnects (a new `connect`, answered OK); every record ends \
                      acknowledged (`storage.unacked` 0: by `ackedThrough` or a retransmission) \
                      and at the platform exactly once",
        // A running gateway's DES-MQTT-8 count resets after a session of 60 s, which the case
        // waits for (an earlier case's cuts would lengthen its back-off).
        needs: Needs::MINUTE,
        run: link_loss,
    });
    v.push(Case {
        id: "BROKER-RESTART",
        requirements: &[
            "IF-CONN-1",
            "SM-SESSION",
            "SM-RESEND",
            "ST-STORE-1",
            "IF-PSEND-3",
        ],
        rules: &["DES-MQTT-8", "DES-MSG-DATA-3"],
        level: Level::Must,
        negative: true,
        description: "the broker restarts while a file's data message is unacknowledged (its \
                      `data.ack` withheld, then lost): the gateway's connection is cut and its \
                      next 3 connections are closed unanswered once their CONNECT is read (a \
                      TLS front whose broker is down); a second file is uploaded meanwhile",
        expectation: "the upload is stored (226) while the broker is away; the gateway \
                      reconnects after the transport back-off, d_1 after the cut and d_2, d_3, \
                      d_4 after each refused connection (DES-MQTT-8 (a): 0.5–1, 1–2, 2–4, 4–8 s, \
                      2 s of room above), and every record of both files ends acknowledged \
                      (`storage.unacked` 0) and at the platform exactly once",
        // A running gateway's count resets after a session of 60 s, which the case waits for.
        needs: Needs::MINUTE,
        run: broker_restart,
    });
    v.push(Case {
        id: "ROOT-SWAP",
        requirements: &["SM-UPDATE", "IF-CERT-1", "SEC-CERT-2"],
        rules: &["DES-CERT-3", "DES-PROV-3"],
        level: Level::Should,
        negative: true,
        description: "the certificate endpoint serves a `root.pem` that is not the provisioned \
                      root (a self-signed stranger) from the gateway's start on",
        expectation: "the stranger is not installed: an `anomaly` of kind `certificate`; the \
                      gateway keeps its provisioned root, so commands and data still work \
                      (start OK, an upload reaches the platform) and a platform certificate \
                      issued afterwards under the provisioned root is verified (a stop it \
                      signs answered OK)",
        needs: Needs::OWN_ALONE,
        run: root_swap,
    });
    v.push(Case {
        id: "APP-CERT-WRONG-ROLE",
        requirements: &["SEC-CERT-1", "SEC-CERT-2", "IF-CERT-1"],
        rules: &["DES-CERT-6", "DES-CERT-4"],
        level: Level::Must,
        negative: true,
        description: "from the gateway's start on, the certificate endpoint lists an application \
                      `rogue` whose certificate is the platform's own (issued under the root, \
                      but with the platform role and name)",
        expectation: "the gateway fetches the application certificates at start, refuses \
                      `rogue`'s (an `anomaly` of kind `certificate` naming it) and goes on \
                      working (an upload reaches the platform)",
        needs: Needs::OWN,
        run: app_cert_wrong_role,
    });
    v.push(Case {
        id: "MQTT-SESSION",
        requirements: &["SM-SESSION", "SM-ID", "SM-DEFAULTPW"],
        rules: &["DES-MQTT-1", "DES-MQTT-2", "DES-MQTT-5", "DES-MQTT-6"],
        level: Level::Must,
        negative: false,
        description: "the gateway connects, is started and sends an upload's data; the broker's \
                      TLS front reads its MQTT CONNECT packets and counts its PUBLISH packets",
        expectation: "every CONNECT is MQTT 3.1.1 (level 4) with client ID = gateway ID, clean \
                      session, the keep-alive of `gateway.toml` (60 s), no will, no user name \
                      and no password; every PUBLISH (connect, status, results, data) has QoS 1 \
                      and retain false",
        needs: Needs::NONE,
        run: mqtt_session,
    });
    v.push(Case {
        id: "CONNECT-BACKOFF",
        requirements: &["IF-CONN-1", "SM-SESSION", "SM-LOCKOUT"],
        rules: &["DES-MQTT-8", "DES-MSG-CONN-3"],
        level: Level::Must,
        negative: true,
        description: "the platform answers the gateway's first 4 `connect`s BUSY (a retryable \
                      refusal), then OK; the gateway is stopped and started again, and the same \
                      once more; then its MQTT connection is cut and the next `connect` refused \
                      BUSY once",
        expectation: "each next `connect` has a new messageId, goes on the same MQTT connection \
                      and comes no sooner than the back-off d_n = 2^(n-1) s × [0.5, 1) after \
                      refusal n (DES-MQTT-8: at least 0.5, 1, 2 and 4 s) and no later than 2 s \
                      past its upper end; before the session the gateway publishes nothing but \
                      `connect`; the 5th is answered OK and `monitor.status` follows; the \
                      second start's waits are not the first's (the jitter drawn afresh at \
                      each start); its connection cut seconds into the session, the next BUSY \
                      is the fifth since the count reset (d_5: 8 to 16 s, the count resets only \
                      after a session of 60 s)",
        needs: Needs::OWN,
        run: connect_backoff,
    });
    v.push(Case {
        id: "CONNECT-BACKOFF-RESET",
        requirements: &["IF-CONN-1", "SM-SESSION"],
        rules: &["DES-MQTT-8"],
        level: Level::Must,
        negative: true,
        description: "the broker closes the gateway's first 3 MQTT connections unanswered and \
                      the platform answers its first 4 `connect`s BUSY, then OK; once that \
                      session has lasted 62 s its connection is cut, the next MQTT connection \
                      closed unanswered and the next `connect` refused BUSY once",
        expectation: "the connections and the `connect` retries wait d_1, d_2, … as in \
                      BROKER-RESTART and CONNECT-BACKOFF; after the cut both counts were reset \
                      by the 60 s session (DES-MQTT-8): the first connection comes d_1 after \
                      the cut, the next d_2 after the refused one, and the next `connect` d_1 \
                      after the BUSY (0.5 to 1 s, and no later than 2 s past that), not d_4 or \
                      d_5 (4 to 16 s)",
        needs: Needs::OWN_MINUTE,
        run: connect_backoff_reset,
    });
    v.push(Case {
        id: "CONNECT-REFUSED-LASTING",
        requirements: &["IF-CONN-1", "SM-SESSION", "SM-LOCKOUT"],
        rules: &["DES-MSG-CONN-3"],
        level: Level::Must,
        negative: true,
        description: "the platform answers the gateway's first `connect` UNAUTHORIZED (a lasting \
                      refusal); the suite watches for 6 s",
        expectation: "no other `connect` nor anything else from the gateway in those 6 s: a \
                      lasting refusal is retried every 300 s (DES-MSG-CONN-3), never at once \
                      nor on the back-off of a retryable one",
        needs: Needs::OWN,
        run: connect_refused_lasting,
    });
    v.push(Case {
        id: "FTP-QUARANTINE",
        requirements: &["SC-FTP-1", "SM-ATREST", "SM-AUDIT"],
        rules: &["DES-FTP-7"],
        level: Level::Must,
        negative: true,
        description: "a valid file (226), a file with a wrong column count (551) and, with \
                      storing stopped, a valid one (450) are uploaded",
        expectation: "the refused 5xx file is in `{state_dir}/quarantine/` (mode 0700) as \
                      `{yyyymmddThhmmssZ}_{user}_{name}`, byte for byte, with `{same}.reason` \
                      (the reply line and the client address), both mode 0600; nothing else is \
                      there; neither the accepted file nor the 4xx one is kept anywhere in the \
                      bundle",
        needs: Needs::OWN,
        run: ftp_quarantine,
    });
    v.push(Case {
        id: "CONFIG-REFUSED",
        requirements: &["SM-UPDATE", "SM-DEFAULTPW"],
        rules: &["DES-PROV-2", "DES-ID-3"],
        level: Level::Must,
        negative: true,
        description: "the gateway is started from a `gateway.toml` with an unknown key \
                      (`[gateway] colour`), then from one with a dataset named `Billing` \
                      (outside DES-ID-3), then from the valid one",
        expectation: "each broken configuration is refused at start-up: the gateway does not \
                      start (in process: start fails; a process: it exits) and never connects; \
                      the valid one starts and connects",
        needs: Needs::OWN,
        run: config_refused,
    });
    v.push(Case {
        id: "MASK-ROTATION",
        requirements: &["SEC-MASK-1", "SEC-MASK-2", "SEC-CERT-3", "SM-UPDATE"],
        rules: &["DES-MASK-3", "DES-MASK-1", "DES-PROV-2"],
        level: Level::Must,
        negative: true,
        description: "3 billing records sent under the bundle's masking key; the gateway \
                      stopped; the utility rotates (DES-MASK-3): a new key `rotated2` made \
                      `active_key` — first before its file exists, then with its file \
                      readable by group, then holding 63 hex digits, then correct (64 hex \
                      digits, 0600); 3 more records uploaded",
        expectation: "the three broken rotations are refused at start-up (DES-PROV-2: an \
                      `active_key` not loaded; a key file not 0600 or not 64 hex digits): the \
                      gateway does not start and never connects; the correct one starts, and \
                      the new records' masked columns carry the keyId `rotated2`, unmasking \
                      with the new key to the uploaded values, while the first records keep \
                      the old keyId and still unmask with the old key (old keys stay for \
                      unmasking)",
        needs: Needs::OWN,
        run: mask_rotation,
    });
    v.push(Case {
        id: "AUDIT-TRAIL",
        requirements: &["SM-AUDIT"],
        rules: &["DES-AUDIT-1"],
        level: Level::Should,
        negative: true,
        description: "periodic sending started; an FTP login as an unknown user with a password \
                      only this case knows (refused 530); an upload of 3 billing records under \
                      a file name only this case uses; the gateway stopped and started again; \
                      then its access history read (the reference gateway's \
                      `{state_dir}/audit.jsonl`, or the capability `accessHistoryCommand`)",
        expectation: "the history names who, when and from where (DES-AUDIT-1): the unknown \
                      user of the failed login, the dataset's FTP user and the file name of \
                      the upload, the client address 127.0.0.1 and the messageId of the \
                      `periodic.start` received — the entries from before the restart kept; \
                      it holds no password (neither the refused one nor the FTP user's), no \
                      plaintext of a masked column and no masking key",
        needs: Needs {
            access_history: true,
            ..Needs::OWN
        },
        run: audit_trail,
    });
    v.push(Case {
        id: "DISPOSE-WIPE",
        requirements: &["SM-DISPOSE"],
        rules: &["DES-PROV-1"],
        level: Level::Should,
        negative: false,
        description: "after data was stored and sent, the stopped gateway is disposed of with its \
                      disposal command (capability `wipeCommand`; `sgw wipe` for our gateway)",
        expectation: "its private keys, masking keys, state directory (store) and archives are \
                      gone, and it no longer starts",
        needs: Needs {
            wipe: true,
            ..Needs::OWN
        },
        run: dispose_wipe,
    });
    v.push(Case {
        id: "EVAC-ARCHIVE",
        requirements: &[
            "ST-EVAC-1",
            "ST-PROVIDE-1",
            "SEC-FILE-SIG-1",
            "SEC-FILE-ENC-1",
            "SM-ATREST",
        ],
        rules: &[
            "DES-EVAC-1",
            "DES-EVAC-2",
            "DES-EVAC-3",
            "DES-EVAC-4",
            "DES-EVAC-5",
            "DES-EVAC-6",
            "DES-FILE-1",
            "DES-FILE-2",
            "DES-FILE-3",
            "DES-FILE-4",
            "DES-FILE-5",
        ],
        level: Level::Must,
        negative: false,
        description: "`retention_days` 0, `evacuation_interval_sec` 1: 6 records are sent and \
                      acknowledged; then `resend.request` seq 1..=6",
        expectation: "`monitor.status` counts 6 evacuated; `evacuation_dir` holds archives named, \
                      indexed (SHA-256) and made as DES-EVAC-2..4 say — an encrypted ZIP to the \
                      gateway's own certificate around a signed ZIP of `records.jsonl` whose \
                      records are those the platform received, masked columns still masked; \
                      `resend.result` OK with archived 6 and the 6 records sent again",
        needs: Needs::OWN,
        run: evac_archive,
    });
    v.push(Case {
        id: "EVAC-ARCHIVE-FORGED",
        requirements: &["ST-EVAC-1", "SEC-FILE-SIG-2", "SEC-FILE-ENC-2", "SM-ATREST"],
        rules: &["DES-EVAC-5", "DES-MSG-RS-2", "DES-MSG-AN-1"],
        level: Level::Must,
        negative: true,
        description: "after evacuation, the archive is replaced by a well-formed one with one \
                      field changed, claiming the gateway's kid but signed with another key and \
                      encrypted to the gateway's certificate (someone who can write the disk \
                      but has not the gateway's key); then `resend.request` of its records",
        expectation: "`resend.result` NOT_FOUND (the records count as no longer held); an \
                      `anomaly` kind `storage` rule DES-EVAC-5; the forged field never reaches \
                      the platform; after two more records, a resend over the archive's range \
                      and them answers PARTIAL with 2 records and sends exactly those two",
        needs: Needs::OWN,
        run: evac_archive_forged,
    });
    v.push(Case {
        id: "EVAC-UNACKED",
        requirements: &["ST-EVAC-1", "ST-STORE-1"],
        rules: &["DES-EVAC-1"],
        level: Level::Must,
        negative: true,
        description: "`retention_days` 0, `evacuation_interval_sec` 1, acknowledgements withheld: \
                      5 records stay unacknowledged through several evacuation passes; then the \
                      acknowledgements flow again",
        expectation: "no archive and `storage.evacuated` 0 while unacknowledged (unacknowledged \
                      records are never evacuated, however old); once acknowledged, all 5 are \
                      evacuated",
        needs: Needs::OWN,
        run: evac_unacked,
    });
    for a in JoseAttack::ALL {
        v.push(jose_case(a));
    }
    for a in EnvelopeAttack::ALL {
        v.push(envelope_case(a));
    }
    v.push(Case {
        id: "DATA-ACK-BUSY",
        requirements: &["IF-PSEND-3", "SM-RESEND"],
        rules: &["DES-MSG-DATA-2", "DES-MSG-DATA-3"],
        level: Level::Must,
        negative: true,
        description: "the platform answers the first two transmissions of an upload's data \
                      `data.ack` BUSY (platform-sim fault `busy-acks=2`: verified, not stored)",
        expectation: "the message answered BUSY stays in flight and is sent again under its \
                      messageId; every record at the platform once, `storage.unacked` 0, nothing \
                      given up (BUSY is not a reason to give up, DES-MSG-DATA-2)",
        needs: Needs {
            patient_gaps: true,
            ..Needs::NONE
        },
        run: data_ack_busy,
    });
    v.push(Case {
        id: "DATA-ACK-CODES",
        requirements: &["IF-PSEND-3", "SM-RESEND"],
        rules: &["DES-MSG-DATA-2", "DES-MSG-DATA-5"],
        level: Level::Must,
        negative: true,
        description: "five uploads of 3 records, one after another; the platform answers the \
                      first transmission of each one's data `data.ack` INTERNAL, MALFORMED, \
                      SECURITY_FAILED, INVALID_STATE and TOO_LARGE (platform-sim fault \
                      `ack-code`: verified, not stored)",
        expectation: "INTERNAL: the message stays in flight and goes again under its messageId, \
                      nothing given up; each of the other four: given up at once — not sent \
                      again, an anomaly (kind `security` for SECURITY_FAILED, else `malformed`; \
                      rule DES-MSG-DATA-5) naming the code, `billing` and the range — its \
                      records held and delivered only by a resend (the case asks for them); in \
                      the end every record at the platform once, nothing unacknowledged",
        needs: Needs {
            patient_gaps: true,
            ..Needs::NONE
        },
        run: data_ack_codes,
    });
    for a in ReplyAttack::ALL {
        v.push(reply_case(a));
    }
    for a in PemAttack::ALL {
        v.push(pem_case(a));
    }
    for kind in BadKind::ALL {
        if let Some(c) = bad_case(kind) {
            v.push(c);
        }
    }
    v
}

impl Needs {
    /// Nothing special.
    pub const NONE: Needs = Needs {
        kill: false,
        xml: false,
        wipe: false,
        own_gateway: false,
        alone: false,
        minute: false,
        access_history: false,
        quick_acks: false,
        patient_gaps: false,
    };
    /// A gateway of its own ([`Needs::own_gateway`]).
    pub const OWN: Needs = Needs {
        own_gateway: true,
        ..Needs::NONE
    };
    /// A gateway of its own and the run to itself ([`Needs::alone`]).
    pub const OWN_ALONE: Needs = Needs {
        alone: true,
        ..Needs::OWN
    };
    /// A minute more ([`Needs::minute`]).
    pub const MINUTE: Needs = Needs {
        minute: true,
        ..Needs::NONE
    };
    /// A gateway of its own and a minute more ([`Needs::minute`]).
    pub const OWN_MINUTE: Needs = Needs {
        minute: true,
        ..Needs::OWN
    };
}

fn wait_ok(r: Result<()>) -> crate::case::CaseResult {
    r.map_err(Into::into)
}

/// A case's future from its body (errors become the case's failure).
fn case<'a>(body: impl std::future::Future<Output = Result<()>> + Send + 'a) -> CaseFuture<'a> {
    Box::pin(async move { wait_ok(body.await) })
}

// ------------------------------------------------------------------ session and periodic

fn conn_ok(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.start_gateway().await?;
        c.wait_wire("connect.result OK", WAIT, is_session).await?;
        let after = c
            .wait_wire("a message after connect.result", WAIT, |e| {
                e.direction == "up" && e.message_type != "connect"
            })
            .await?;
        c.note(format!(
            "first message after the session opened: {}",
            after.message_type
        ));
        if after.message_type != "monitor.status" {
            bail!(
                "first message after connect.result is {}",
                after.message_type
            );
        }
        Ok(())
    })
}

fn pstart_ok(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.start_gateway().await?;
        c.wait_view("session", WAIT, |v| v.connected).await?;
        match upload_billing(c, "early.csv", 3, c.seed).await {
            Ok(_) => bail!("an upload before any start was accepted"),
            Err(e) if e.to_string().contains("replied 450") => {}
            Err(e) => bail!("upload before start: {e} (450 expected)"),
        }
        c.command(OperatorCommand::Start {
            datasets: vec![],
            interval_sec: 1,
            format: ProfileFormat::Json,
        })?;
        let r = c
            .wait_wire("periodic.start.result", WAIT, |e| {
                e.message_type == "periodic.start.result"
            })
            .await?;
        if !r.summary.contains("\"running\":true") || r.code.as_deref() != Some("OK") {
            bail!("result {:?} {}", r.code, r.summary);
        }
        upload_billing(c, "after.csv", 3, c.seed).await?;
        Ok(())
    })
}

/// Uploads `rows` billing rows (seed `seed`) as `name`; the table sent.
async fn upload_billing(c: &Ctx, name: &str, rows: usize, seed: u64) -> Result<legacy_sim::Table> {
    upload_table(c, legacy_sim::Dataset::Billing, name, rows, seed).await
}

/// Uploads `rows` rows of `ds` (seed `seed`) as `name` with the dataset's FTP account; the
/// table sent.
async fn upload_table(
    c: &Ctx,
    ds: legacy_sim::Dataset,
    name: &str,
    rows: usize,
    seed: u64,
) -> Result<legacy_sim::Table> {
    let table = legacy_sim::Table::generate(ds, rows, seed);
    let bytes = table
        .to_csv(&legacy_sim::CsvOptions::default())
        .map_err(|e| anyhow!("{e}"))?;
    upload_bytes(&c.ftp_target(ds.name())?, name, &bytes).await?;
    Ok(table)
}

/// One upload in its own FTPS session; `Ok` only for a completion reply (226).
async fn upload_bytes(
    target: &legacy_sim::push::FtpTarget,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let mut s = Session::open_as(target, &target.password)
        .await
        .map_err(|e| anyhow!("FTP session: {e}"))?;
    s.store(name, bytes)
        .await
        .map_err(|e| anyhow!("STOR {name}: {e}"))?;
    s.quit().await;
    Ok(())
}

/// One upload in its own FTPS session; the reply code to `STOR` (226 when accepted).
async fn upload_reply(
    target: &legacy_sim::push::FtpTarget,
    name: &str,
    bytes: &[u8],
) -> Result<u32> {
    let mut s = Session::open_as(target, &target.password)
        .await
        .map_err(|e| anyhow!("FTP session: {e}"))?;
    let code = stor_reply(&mut s, name, bytes).await?;
    s.quit().await;
    Ok(code)
}

/// The reply code to `STOR` on an open session (226 when accepted); `Err` when there was no
/// reply (the connection failed).
async fn stor_reply(s: &mut Session, name: &str, bytes: &[u8]) -> Result<u32> {
    match s.store(name, bytes).await {
        Ok(()) => Ok(226),
        Err(e) => e.code().ok_or_else(|| anyhow!("STOR {name}: {e}")),
    }
}

/// Billing file `n` of `rows` rows whose first column is `F{n}-{row}` (counted at the platform).
fn marked_file(n: u64, rows: usize) -> Result<Vec<u8>> {
    marked_file_of(n, rows, 0)
}

/// [`marked_file`] with each row's meter number (an unmasked text column) padded with `pad`
/// bytes: at [`WIDE_PAD`] two records fit a data message's 114 688 record bytes and three do
/// not (DES-MSG-DATA-6), as in DATA-SPLIT.
fn marked_file_of(n: u64, rows: usize, pad: usize) -> Result<Vec<u8>> {
    let ds = legacy_sim::Dataset::Billing;
    let meter = ds
        .columns()
        .iter()
        .position(|k| k.name == "meter_id")
        .ok_or_else(|| anyhow!("billing has no meter_id column"))?;
    let mut t = legacy_sim::Table::generate(ds, rows, n);
    for (i, row) in t.rows.iter_mut().enumerate() {
        row[0] = format!("F{n}-{i}");
        if pad > 0 {
            row[meter] = format!("{i}{}", "m".repeat(pad));
        }
    }
    t.to_csv(&legacy_sim::CsvOptions::default())
        .map_err(|e| anyhow!("{e}"))
}

/// The padding of a wide record: about 40 000 bytes of wire size (DES-MSG-DATA-6).
const WIDE_PAD: usize = 40_000;

fn crash_ingest(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        use rand::{Rng, SeedableRng};
        const ROWS: usize = 6;
        let mut rng = rand::rngs::StdRng::seed_from_u64(c.seed);
        // A file is more than one data message (DES-MSG-DATA-6): the restart after a crash
        // point must rebuild each of its messages from the store.
        c.reconfigure(|cfg| cfg.platform.max_records_per_message = CRASH_INGEST_CAP)?;
        c.started(ProfileFormat::Json).await?;
        let target = c.ftp_target("billing")?;
        let mut accepted = std::collections::BTreeSet::new();
        let mut interrupted = 0;
        let mut next = 0u64;
        for round in 0..5 {
            let kill_after = Duration::from_millis(rng.random_range(100..1500));
            let results: std::sync::Arc<std::sync::Mutex<Vec<(u64, bool)>>> = Default::default();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let uploads = {
                let (target, results, stop) = (target.clone(), results.clone(), stop.clone());
                let first = next;
                tokio::spawn(async move {
                    let mut n = first;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let Ok(bytes) = marked_file(n, ROWS) else {
                            break;
                        };
                        let ok = upload_bytes(&target, &format!("f{n}.csv"), &bytes)
                            .await
                            .is_ok();
                        if let Ok(mut r) = results.lock() {
                            r.push((n, ok));
                        }
                        n += 1;
                    }
                })
            };
            tokio::time::sleep(kill_after).await;
            if !c.kill_gateway().await? {
                bail!("the target cannot be killed");
            }
            // The upload running at the kill fails (no 226): it may arrive or not,
            // but only whole and once.
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = uploads.await;
            for (n, ok) in results.lock().map(|r| r.clone()).unwrap_or_default() {
                next = next.max(n + 1);
                if ok {
                    accepted.insert(n);
                } else {
                    interrupted += 1;
                }
            }
            next += 1;
            c.note(format!(
                "round {round}: killed after {kill_after:?}, {} accepted so far",
                accepted.len()
            ));
            c.start_gateway().await?;
        }
        // Twice more, killed right after an upload's commit: the gateway has committed the
        // file but not yet saved what it indexed of it (a crash between an ingest and the next
        // snapshot), which its restart must recover. Where the target offers crash points (the
        // in-process gateway) it dies exactly there; otherwise it is killed the moment the
        // upload is answered 226, which is as close as the outside gets.
        // They start in a later whole second than anything before, so that a resend by time
        // can ask for exactly their records afterwards.
        // Each of the two files must be sent by the periodic send after its own restart
        // (checked at the end), and is, well before the platform's gap detection asks for it
        // (`Needs::patient_gaps`) — unless a hole older than the grace is open then, which
        // the platform asks for at once: nothing is left unacknowledged before either round
        // (every accepted file at the platform first, as after each of the two rounds).
        marked_files_stored(c, &accepted, ROWS).await?;
        nothing_unacknowledged(c, "after the five rounds of random kills").await?;
        let t0 = next_whole_second().await?;
        let mut how = Vec::new();
        for round in 5..7 {
            let aimed = c.crash_gateway_at(CrashPoint::AfterIngestCommit).await?;
            // Round 6's records are wide: the restart must rebuild the file's data messages
            // within the byte bound of DES-MSG-DATA-6 (two records each), not by the count
            // bound alone (four).
            let pad = if round == 6 { WIDE_PAD } else { 0 };
            let file = marked_file_of(next, ROWS, pad)?;
            upload_bytes(&target, &format!("f{next}.csv"), &file).await?;
            if aimed {
                c.wait_gateway_crashed(Duration::from_secs(10), "an upload answered 226")
                    .await?;
                c.note(format!(
                    "round {round}: died right after file {next}'s commit (the target's crash \
                     point), before the snapshot that indexes it; it was answered 226"
                ));
                how.push(format!("died right after file {next}'s commit"));
            } else {
                if !c.kill_gateway().await? {
                    bail!("the target cannot be killed");
                }
                c.note(format!(
                    "round {round}: killed as file {next} was answered 226"
                ));
                how.push(format!("was killed as file {next} was answered 226"));
            }
            accepted.insert(next);
            next += 1;
            c.start_gateway().await?;
            // A status from before the crash may still be the platform's last: the file's rows
            // at the platform first, so that only a status counting them can satisfy the wait.
            marked_files_stored(c, &[next - 1].into(), ROWS).await?;
            nothing_unacknowledged(c, &format!("after round {round}'s restart")).await?;
        }
        let t1 = this_second_ends()?;
        // Nothing proved unless uploads were accepted and some were cut by a kill.
        if accepted.is_empty() || interrupted == 0 {
            bail!(
                "{} uploads accepted, {interrupted} cut by a kill over 5 rounds: the kills \
                 proved nothing",
                accepted.len()
            );
        }
        c.note(format!("{interrupted} uploads cut by a kill"));
        // Every accepted file is at the platform (waited for above) and the gateway holds
        // nothing unacknowledged: what the platform holds now is all it will get.
        let stored = c.stored()?;
        let mut per_id: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in &stored {
            *per_id.entry(r.fields[0].as_str()).or_insert(0) += 1;
        }
        if let Some((id, n)) = per_id.iter().find(|(_, n)| **n > 1) {
            bail!("row {id} stored {n} times");
        }
        let mut files: std::collections::BTreeMap<u64, usize> = Default::default();
        for id in per_id.keys() {
            if let Some(n) = id[1..].split('-').next().and_then(|n| n.parse().ok()) {
                *files.entry(n).or_insert(0) += 1;
            }
        }
        if let Some((n, rows)) = files.iter().find(|(_, r)| **r != ROWS) {
            bail!("file {n} reached the platform in part ({rows} of {ROWS} rows)");
        }
        c.note(format!(
            "{} files accepted, {} at the platform",
            accepted.len(),
            files.len()
        ));
        let last_two: Vec<u64> = stored
            .iter()
            .filter(|r| {
                [next - 2, next - 1]
                    .iter()
                    .any(|n| r.fields[0].starts_with(&format!("F{n}-")))
            })
            .map(|r| r.seq)
            .collect();
        sent_by_the_periodic_send(c, &last_two, &how)?;
        crash_ingest_resend_by_time(c, t0, t1, &last_two, &how).await
    })
}

/// Waits for a status that shows every record of the gateway acknowledged and at the
/// platform.
async fn nothing_unacknowledged(c: &Ctx, when: &str) -> Result<()> {
    c.wait_view(&format!("every record acknowledged {when}"), WAIT, |v| {
        v.last_status
            .as_ref()
            .is_some_and(|s| s.storage.unacked == 0 && s.last_seq == v.highest_seq)
    })
    .await
    .map_err(|e| {
        let v = c.view();
        let status = v
            .last_status
            .as_ref()
            .map(|s| (s.last_seq, s.storage.unacked));
        anyhow!(
            "{e}: the last status's (lastSeq, unacknowledged) {status:?}, the platform's \
             highest seq {}, holes below it {:?}",
            v.highest_seq,
            v.gaps
        )
    })?;
    Ok(())
}

/// Waits until the platform holds every row of each marked file in `files` ([`marked_file`]),
/// reading its record table once a look.
async fn marked_files_stored(
    c: &Ctx,
    files: &std::collections::BTreeSet<u64>,
    rows: usize,
) -> Result<()> {
    Ctx::poll(WAIT, || {
        let mut have: std::collections::BTreeMap<u64, usize> =
            files.iter().map(|n| (*n, 0)).collect();
        for r in c.stored()? {
            let file = r.fields.first().and_then(|f| {
                f.strip_prefix('F')?
                    .split_once('-')
                    .and_then(|(n, _)| n.parse::<u64>().ok())
            });
            if let Some(count) = file.and_then(|n| have.get_mut(&n)) {
                *count += 1;
            }
        }
        let short: Vec<_> = have.into_iter().filter(|(_, h)| *h < rows).collect();
        Ok(match short.first() {
            None => Look::Done(()),
            Some((n, h)) => Look::Not(format!(
                "file f{n}.csv, answered 226, has {h} of its {rows} rows at the platform after \
                 {} s{}",
                WAIT.as_secs(),
                match short.len() {
                    1 => String::new(),
                    k => format!(" ({} more accepted files short)", k - 1),
                }
            )),
        })
    })
    .await
}

/// `max_records_per_message` of CRASH-INGEST's gateway: its files of 6 rows are two data
/// messages each.
const CRASH_INGEST_CAP: u32 = 4;

/// CRASH-INGEST: every record of the files of rounds 5 and 6 (`seqs`, each file committed and
/// then the gateway crashed) reached the platform in a periodic data message — after a restart
/// every unacknowledged record is sent again by the periodic send (DES-MSG-DATA-3), not left
/// for the platform's gap detection to ask for.
fn sent_by_the_periodic_send(c: &mut Ctx, seqs: &[u64], how: &[String]) -> Result<()> {
    let periodic: Vec<_> = c
        .wire()
        .iter()
        .filter(|e| is_periodic_data(e))
        .filter_map(|e| data_range(&e.summary))
        .collect();
    let only_resent: Vec<u64> = seqs
        .iter()
        .copied()
        .filter(|s| !periodic.iter().any(|r| r.contains(s)))
        .collect();
    if !only_resent.is_empty() {
        bail!(
            "records {only_resent:?} of the files of rounds 5 and 6 (the gateway {}) reached \
             the platform only in resend data: after a restart every unacknowledged record is \
             sent again by the periodic send (DES-MSG-DATA-3)",
            how.join(" and ")
        );
    }
    c.note(format!(
        "the records of rounds 5 and 6 ({} seqs) each came in a periodic data message",
        seqs.len()
    ));
    Ok(())
}

/// CRASH-INGEST's last step: the records of the two files uploaded in `t0..=t1` (rounds 5 and
/// 6, each followed by a crash; `seqs` as the platform stored them) are what a resend by time
/// over `t0..=t1` serves — the ingest time survives the crash (DES-MSG-RS-1), also where the
/// restart rebuilt the file's batches from the store (a crash point before the snapshot).
async fn crash_ingest_resend_by_time(
    c: &mut Ctx,
    t0: chrono::DateTime<chrono::Utc>,
    t1: chrono::DateTime<chrono::Utc>,
    seqs: &[u64],
    how: &[String],
) -> Result<()> {
    let (Some(&first), Some(&last)) = (seqs.iter().min(), seqs.iter().max()) else {
        bail!("the files of rounds 5 and 6 are not at the platform");
    };
    if last - first + 1 != seqs.len() as u64 {
        bail!("the records of rounds 5 and 6 hold seqs {seqs:?}, not one range");
    }
    let context = format!(
        " (in rounds 5 and 6 the gateway {}; the ingest time is kept across a crash)",
        how.join(" and ")
    );
    let from = c.wire().len();
    let resent = resend_by_time_exactly(c, from, (t0, t1), first..=last, &context).await?;
    c.note(format!("resend by time {t0}..={t1}: {resent:?}"));
    Ok(())
}

/// Rows per file of CRASH-SENDING.
const CRASH_SENDING_ROWS: usize = 10;

/// The platform holds exactly the rows of marked files `1..=files` ([`marked_file`]), each
/// once and under its seq: file n's row i at the case's seq `(n - 1) × rows + i + 1`.
fn marked_rows_in_place(c: &Ctx, files: u64, rows: usize) -> Result<()> {
    exactly_once(c, files * rows as u64)?;
    for r in c.stored()? {
        let k = r.seq - c.seq(1);
        let want = format!("F{}-{}", k / rows as u64 + 1, k % rows as u64);
        if r.fields.first() != Some(&want) {
            bail!(
                "seq {} holds row {:?}, {want} expected (seqs are assigned once, at ingest: \
                 DES-ID-4)",
                r.seq,
                r.fields.first()
            );
        }
    }
    Ok(())
}

fn crash_sending(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        const ROWS: usize = CRASH_SENDING_ROWS;
        c.started(ProfileFormat::Json).await?;
        let target = c.ftp_target("billing")?;
        // 1. Killed while file 1's data message is unacknowledged: every copy of it is lost
        //    on its way, so the platform holds none of it when the gateway dies.
        c.faults(FaultConfig {
            lose_data: 1_000,
            ..FaultConfig::default()
        })?;
        upload_bytes(&target, "f1.csv", &marked_file(1, ROWS)?).await?;
        let lost = c
            .wait_wire("file 1's data message", WAIT, |e| {
                e.message_type == "data"
                    && e.direction == "up"
                    && e.fault.as_deref() == Some("lost")
            })
            .await?;
        if !c.stored()?.is_empty() {
            bail!("the platform stored data of a lost message (the suite's fault failed)");
        }
        if !c.kill_gateway().await? {
            bail!("the target cannot be killed");
        }
        c.faults(FaultConfig::default())?;
        c.note(format!(
            "killed with data message {} ({}) lost and unacknowledged",
            lost.message_id, lost.summary
        ));
        c.start_gateway().await?;
        c.wait_all_acknowledged(
            "file 1's records acknowledged after the restart (they were sent, lost and never \
             acknowledged before the kill)",
            ROWS as u64,
        )
        .await?;
        marked_rows_in_place(c, 1, ROWS)?;
        // 2. Killed as the platform's data.ack for file 2 goes out: the gateway may die
        //    before or after it takes it; either way nothing is lost or doubled.
        upload_bytes(&target, "f2.csv", &marked_file(2, ROWS)?).await?;
        let second = c.seq(ROWS as u64 + 1);
        let data = c
            .wait_wire("file 2's data message", WAIT, |e| {
                e.message_type == "data"
                    && e.direction == "up"
                    && data_range(&e.summary).is_some_and(|r| r.contains(&second))
            })
            .await?;
        c.wait_wire("the platform's data.ack for file 2", WAIT, |e| {
            e.message_type == "data.ack"
                && e.in_reply_to.as_deref() == Some(data.message_id.as_str())
        })
        .await?;
        c.kill_gateway().await?;
        c.start_gateway().await?;
        c.wait_all_acknowledged(
            "both files' records acknowledged after the second restart",
            2 * ROWS as u64,
        )
        .await?;
        marked_rows_in_place(c, 2, ROWS)?;
        Ok(())
    })
}

fn pstart_duplicated(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.session().await?;
        c.faults(FaultConfig {
            duplicate_percent: 100,
            ..FaultConfig::default()
        })?;
        c.command(OperatorCommand::Start {
            datasets: vec![],
            interval_sec: 1,
            format: ProfileFormat::Json,
        })?;
        let start = c
            .wait_wire("periodic.start", WAIT, |e| {
                e.message_type == "periodic.start"
            })
            .await?;
        let answers = Ctx::poll(WAIT, || {
            let answers: Vec<_> = c
                .wire()
                .into_iter()
                .filter(|e| e.in_reply_to.as_deref() == Some(start.message_id.as_str()))
                .collect();
            Ok(match answers.len() {
                n if n >= 2 => Look::Done(answers),
                n => Look::Not(format!("{n} answer(s) to the duplicated start")),
            })
        })
        .await?;
        if answers
            .iter()
            .any(|a| a.code.as_deref() != Some("OK") || a.summary != answers[0].summary)
        {
            bail!("the copies got different results: {answers:?}");
        }
        if !answers[0].summary.contains("\"commandSeq\":1") {
            bail!("applied twice or not at all: {}", answers[0].summary);
        }
        // The copy is answered from the reply memory: the first reply again, with its own
        // messageId (DES-ENV-8), not a second reply.
        if answers
            .iter()
            .any(|a| a.message_id != answers[0].message_id)
        {
            let ids: Vec<&str> = answers.iter().map(|a| a.message_id.as_str()).collect();
            bail!(
                "the copy got a reply of its own (messageIds {ids:?}), not the first one again (DES-ENV-8)"
            );
        }
        if start.fault.as_deref() != Some("duplicated") {
            bail!("the suite's duplicate fault did not duplicate the start: nothing proved");
        }
        Ok(())
    })
}

fn pstart_unknown_dataset(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.session().await?;
        c.command(OperatorCommand::Start {
            datasets: vec![
                gateway::protocol::ids::Dataset::new("no_such_dataset")
                    .map_err(|e| anyhow!("{e}"))?,
            ],
            interval_sec: 1,
            format: ProfileFormat::Json,
        })?;
        let r = c
            .wait_wire("periodic.start.result", WAIT, |e| {
                e.message_type == "periodic.start.result"
            })
            .await?;
        if r.code.as_deref() != Some("UNKNOWN_DATASET") {
            bail!("result {:?} {}", r.code, r.summary);
        }
        match upload_billing(c, "x.csv", 3, c.seed).await {
            Ok(_) => bail!("an upload was accepted after a refused start"),
            Err(e) if e.to_string().contains("replied 450") => Ok(()),
            Err(e) => bail!("upload: {e} (450 expected)"),
        }
    })
}

async fn psend(c: &mut Ctx, format: ProfileFormat) -> Result<()> {
    c.started(format).await?;
    let table = upload_billing(c, "billing_1.csv", 30, c.seed).await?;
    let stored = stored_at_least(c, 30).await?;
    if stored.len() != 30 {
        bail!("{} records stored, 30 uploaded", stored.len());
    }
    let ds = gateway::protocol::ids::Dataset::new("billing").map_err(|e| anyhow!("{e}"))?;
    let columns = &c
        .cfg
        .dataset(&ds)
        .ok_or_else(|| anyhow!("billing"))?
        .columns;
    // The utility's key, from the gateway's bundle (the platform never has it, SEC-MASK-2).
    let keys = gateway::security::MaskingKeys::load_dir(
        c.cfg.masking.keys_dir.path(),
        c.cfg.masking.active_key.as_str(),
    )?;
    for (i, r) in stored.iter().enumerate() {
        if r.seq != c.seq(i as u64 + 1) {
            bail!("record {i} has seq {}", r.seq);
        }
        record_as_uploaded(r, &table.rows[i], columns, &keys)?;
    }
    let fmt = if format == ProfileFormat::Xml {
        "Xml"
    } else {
        "Json"
    };
    let data: Vec<_> = c
        .wire()
        .into_iter()
        .filter(|e| e.message_type == "data")
        .collect();
    if !data.iter().all(|e| e.summary.contains(fmt)) {
        bail!(
            "a data message not in {fmt}: {:?}",
            data.iter().map(|e| &e.summary).collect::<Vec<_>>()
        );
    }
    c.note(format!("{} data message(s) for 30 records", data.len()));
    Ok(())
}

/// A record as the platform stored it against the row uploaded: unmasked columns equal, masked
/// ones not in clear (DES-MASK-4) and unmasking with the utility's key to the uploaded value.
fn record_as_uploaded(
    r: &platform_sim::platform::store::RecordRow,
    row: &[String],
    columns: &[gateway::profile::Column],
    keys: &gateway::security::MaskingKeys,
) -> Result<()> {
    if r.fields.len() != columns.len() || row.len() != columns.len() {
        bail!(
            "seq {}: {} fields stored, {} uploaded, {} columns in dataset {}",
            r.seq,
            r.fields.len(),
            row.len(),
            columns.len(),
            r.dataset
        );
    }
    for (j, col) in columns.iter().enumerate() {
        let (got, sent) = (&r.fields[j], &row[j]);
        if col.masked {
            if got == sent || !got.starts_with("m1.") {
                bail!(
                    "seq {} column {} is not masked (DES-MASK-4)",
                    r.seq,
                    col.name
                );
            }
        } else if got != sent {
            bail!(
                "seq {} column {}: {got:?} ≠ uploaded {sent:?}",
                r.seq,
                col.name
            );
        }
        if col.masked && keys.unmask(&col.name, got).ok().as_deref() != Some(sent.as_str()) {
            bail!(
                "seq {} column {} does not unmask to the uploaded value",
                r.seq,
                col.name
            );
        }
    }
    Ok(())
}

fn psend_datasets(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        use legacy_sim::Dataset as D;
        c.started(ProfileFormat::Json).await?;
        // Four files of three datasets, one after the other: seqs 1..=3 pipe_ledger, 4..=7
        // billing, 8..=10 meter_reading, 11..=12 pipe_ledger (DES-ID-4: one counter).
        let plan = [
            (D::PipeLedger, 3usize),
            (D::Billing, 4),
            (D::MeterReading, 3),
            (D::PipeLedger, 2),
        ];
        let mut uploaded: Vec<(D, Vec<String>)> = Vec::new();
        // Each file's run: (dataset, first, last) in the case's seqs.
        let mut runs: Vec<(String, u64, u64)> = Vec::new();
        for (i, (ds, n)) in plan.into_iter().enumerate() {
            let name = format!("{}_{i}.csv", ds.name());
            let t = upload_table(c, ds, &name, n, c.seed + i as u64).await?;
            let first = uploaded.len() as u64 + 1;
            uploaded.extend(t.rows.into_iter().map(|r| (ds, r)));
            runs.push((ds.name().to_owned(), first, uploaded.len() as u64));
        }
        let n = uploaded.len();
        let stored = stored_at_least(c, n)
            .await
            .map_err(|e| anyhow!("{e}; data and acks: {:?}", data_and_acks(c)))?;
        if stored.len() != n {
            bail!("{} records stored, {n} uploaded", stored.len());
        }
        let keys = gateway::security::MaskingKeys::load_dir(
            c.cfg.masking.keys_dir.path(),
            c.cfg.masking.active_key.as_str(),
        )?;
        for (i, (r, (ds, row))) in stored.iter().zip(&uploaded).enumerate() {
            if r.seq != c.seq(i as u64 + 1) {
                bail!("record {i} has seq {}", r.seq);
            }
            if r.dataset != ds.name() {
                bail!(
                    "seq {} came in data message {} of dataset {}: uploaded as {} (DES-MSG-DATA-1: \
                     every seq of a message's range belongs to its dataset)",
                    r.seq,
                    r.message_id,
                    r.dataset,
                    ds.name()
                );
            }
            let id = gateway::protocol::ids::Dataset::new(ds.name()).map_err(|e| anyhow!("{e}"))?;
            let columns = &c
                .cfg
                .dataset(&id)
                .ok_or_else(|| anyhow!("dataset {} not provisioned", ds.name()))?
                .columns;
            record_as_uploaded(r, row, columns, &keys)?;
        }
        // A resend of every seq: each file's run in a message of its own dataset
        // (DES-MSG-RS-3), so 4 messages.
        resend_runs(c, None, n as u64, &runs).await?;
        // Only pipe_ledger over the same range: OK, not PARTIAL — the other datasets' seqs are
        // not missing (DES-MSG-RS-2) — with its two runs.
        let ledger: Vec<_> = runs
            .iter()
            .filter(|(d, _, _)| d == D::PipeLedger.name())
            .cloned()
            .collect();
        resend_runs(c, Some(D::PipeLedger.name()), n as u64, &ledger).await?;
        Ok(())
    })
}

/// Waits for a `monitor.status` that arrives `after` or later; `what` names the wait in the
/// failure. (DES-MSG-MON-1: a status's figures are at most 10 s old and it arrives within 2 s
/// of its stamp, so one arriving 12 s after an event counts it.)
async fn wait_status_after(c: &Ctx, after: std::time::Instant, what: &str) -> Result<()> {
    Ctx::poll(WAIT + Duration::from_secs(12), || {
        let seen = c
            .wire_timed()
            .iter()
            .any(|(e, at)| e.message_type == "monitor.status" && *at >= after);
        Ok(match seen {
            true => Look::Done(()),
            false => Look::Not(format!("{what}: not within {} s", WAIT.as_secs() + 12)),
        })
    })
    .await
}

/// The IDs of the data messages in `wire` that `which` selects and that no `data.ack` OK
/// answered (one the suite's faults left alone).
fn unacknowledged_data(wire: &[WireEvent], which: impl Fn(&WireEvent) -> bool) -> Vec<&str> {
    wire.iter()
        .filter(|d| d.message_type == "data" && which(d))
        .filter(|d| {
            !wire.iter().any(|a| {
                a.message_type == "data.ack"
                    && a.code.as_deref() == Some("OK")
                    && a.fault.is_none()
                    && a.in_reply_to.as_deref() == Some(d.message_id.as_str())
            })
        })
        .map(|d| d.message_id.as_str())
        .collect()
}

/// Each data message's summary with the codes of its `data.ack`s (for a failure's message).
fn data_and_acks(c: &Ctx) -> Vec<String> {
    let wire = c.wire();
    wire.iter()
        .filter(|e| e.message_type == "data")
        .map(|d| {
            let codes: Vec<&str> = wire
                .iter()
                .filter(|a| {
                    a.message_type == "data.ack"
                        && a.in_reply_to.as_deref() == Some(d.message_id.as_str())
                })
                .filter_map(|a| a.code.as_deref())
                .collect();
            format!("{} → {codes:?}", d.summary)
        })
        .collect()
}

/// A resend of the case's seqs `1..=last` (only `dataset`'s when given) must be answered OK
/// with the records and messages of `runs`, and its data must be exactly `runs`: each
/// (dataset, first, last) one message of that dataset.
async fn resend_runs(
    c: &mut Ctx,
    dataset: Option<&str>,
    last: u64,
    runs: &[(String, u64, u64)],
) -> Result<()> {
    let records: u64 = runs.iter().map(|(_, f, l)| l - f + 1).sum();
    let r = resend_result_of(c, dataset, 1, last).await?;
    let want = [
        format!("\"records\":{records}"),
        format!("\"messages\":{}", runs.len()),
    ];
    if r.code.as_deref() != Some("OK") || !want.iter().all(|w| r.summary.contains(w.as_str())) {
        bail!(
            "resend.result {:?} {} to {}..={} of dataset {}: OK with {records} records in {} \
             messages expected (DES-MSG-RS-2, DES-MSG-RS-3: one message per dataset's run)",
            r.code,
            r.summary,
            c.seq(1),
            c.seq(last),
            dataset.unwrap_or("any"),
            runs.len()
        );
    }
    let request = r.in_reply_to.clone().unwrap_or_default();
    let for_request = format!(" for request {request}");
    let mut expected: Vec<(String, std::ops::RangeInclusive<u64>)> = runs
        .iter()
        .map(|(d, f, l)| (d.clone(), c.seq(*f)..=c.seq(*l)))
        .collect();
    expected.sort_by_key(|(_, r)| *r.start());
    let got = Ctx::poll(WAIT, || {
        let mut got: Vec<(String, std::ops::RangeInclusive<u64>)> = c
            .wire()
            .into_iter()
            .filter(|e| e.message_type == "data" && e.summary.ends_with(&for_request))
            .filter_map(|e| {
                let d = e.summary.split_whitespace().next()?.to_owned();
                Some((d, data_range(&e.summary)?))
            })
            .collect();
        got.sort_by_key(|(_, r)| *r.start());
        got.dedup();
        Ok(match got.len() >= expected.len() {
            true => Look::Done(got),
            false => Look::Not(format!(
                "the resend's {} data messages: {} within {} s ({got:?})",
                expected.len(),
                got.len(),
                WAIT.as_secs()
            )),
        })
    })
    .await?;
    if got != expected {
        bail!(
            "resend data {got:?} for dataset {}: exactly {expected:?} expected, each one \
             dataset's contiguous run (DES-MSG-RS-3)",
            dataset.unwrap_or("any")
        );
    }
    Ok(())
}

fn psend_json(c: &mut Ctx) -> CaseFuture<'_> {
    Box::pin(async move { wait_ok(psend(c, ProfileFormat::Json).await) })
}

fn psend_xml(c: &mut Ctx) -> CaseFuture<'_> {
    Box::pin(async move { wait_ok(psend(c, ProfileFormat::Xml).await) })
}

fn disc_ok(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.session().await?;
        c.stop_gateway().await?;
        c.wait_wire("disconnect", WAIT, |e| e.message_type == "disconnect")
            .await?;
        c.wait_wire("disconnect.result OK", WAIT, |e| {
            e.message_type == "disconnect.result" && e.code.as_deref() == Some("OK")
        })
        .await?;
        Ok(())
    })
}

fn cert_fetch(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.start_gateway().await?;
        let gw = c.gw.to_string();
        let got = Ctx::poll(WAIT, || {
            let got = c.https_requests();
            let fetched = |p: &str| got.iter().any(|(who, path)| *who == gw && path == p);
            let crl = fetched("/sgw/v1/crl.pem") || fetched("/sgw/v1/crl.der");
            Ok(
                if fetched("/sgw/v1/certs/root.pem") && fetched("/sgw/v1/certs/platform.pem") && crl
                {
                    Look::Done(got)
                } else {
                    Look::Not(format!("fetched only {got:?}"))
                },
            )
        })
        .await?;
        c.note(format!("HTTPS requests: {got:?}"));
        // And with what it fetched it opens its session (the report's wire log shows it; the
        // fetches alone can end the case before the gateway's `connect`).
        c.wait_session_open().await
    })
}

fn ftp_plain_refused(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        let mut t = c.ftp_target("billing")?;
        t.tls = None;
        match Session::open(&t).await {
            Ok(s) => {
                s.quit().await;
                bail!("a plain-FTP login was accepted")
            }
            Err(e) if matches!(e.code(), Some(530 | 534)) => {
                c.note(format!("plain login: {e}"));
                Ok(())
            }
            Err(e) => bail!("plain login: {e} (530 or 534 expected)"),
        }
    })
}

/// Whether `e` is a data message of periodic sending (not a resend).
fn is_periodic_data(e: &WireEvent) -> bool {
    e.message_type == "data" && e.summary.contains(" periodic ")
}

fn pstop_ok(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        // Records stored, not yet sent (the first send is due 5 s after the start), when the
        // stop comes: a gateway that went on sending would send them at that tick. Meanwhile
        // the platform's messages are dropped, so that its resend request for the records it
        // sees announced (`lastSeq`) cannot deliver them first.
        c.started_every(ProfileFormat::Json, 5).await?;
        let started = tokio::time::Instant::now();
        upload_billing(c, "before_stop.csv", 3, c.seed).await?;
        c.command(OperatorCommand::Stop)?;
        c.wait_wire("periodic.stop.result OK", WAIT, |e| {
            e.message_type == "periodic.stop.result" && e.code.as_deref() == Some("OK")
        })
        .await?;
        c.faults(FaultConfig {
            drop_percent: 100,
            ..FaultConfig::default()
        })?;
        if c.wire().iter().any(is_periodic_data) {
            bail!(
                "the records were sent before the stop was answered (the 5 s interval passed): \
                 nothing proved"
            );
        }
        match upload_billing(c, "after_stop.csv", 3, c.seed + 1).await {
            Ok(_) => bail!("an upload after stop was accepted"),
            Err(e) if e.to_string().contains("replied 450") => {
                c.note(format!("upload after stop: {e}"));
            }
            Err(e) => bail!("upload after stop: {e} (450 expected)"),
        }
        tokio::time::sleep_until(started + Duration::from_millis(6500)).await;
        if c.wire().iter().any(is_periodic_data) {
            bail!("data sent after stop");
        }
        // Stored before the stop, they are still delivered (here by the platform's resend,
        // DES-MSG-DATA-4).
        c.faults(FaultConfig::default())?;
        c.wait_all_acknowledged("the 3 records stored before the stop, acknowledged", 3)
            .await?;
        exactly_once(c, 3)
    })
}

fn ack_withheld(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        c.faults(FaultConfig {
            withhold_acks: true,
            ..FaultConfig::default()
        })?;
        upload_billing(c, "billing_1.csv", 10, c.seed).await?;
        let first = c
            .wait_wire("data", WAIT, |e| e.message_type == "data")
            .await?;
        let id = first.message_id.clone();
        c.wait_wire("the same data message again", WAIT, |e| {
            e.message_type == "data" && e.message_id == id && e.at != first.at
        })
        .await?;
        // DES-MSG-DATA-3: waits T = ackTimeoutSec, then 2T: by arrival times, the first
        // retransmission no sooner than T/2, and no third transmission within 2.5 T (the
        // correct one comes at 3 T).
        let t = f64::from(ACK_TIMEOUT_SEC);
        let timed = |c: &Ctx| -> Vec<std::time::Instant> {
            c.wire_timed()
                .into_iter()
                .filter(|(e, _)| e.message_type == "data" && e.message_id == id)
                .map(|(_, at)| at)
                .collect()
        };
        let first_at = timed(c)
            .first()
            .copied()
            .ok_or_else(|| anyhow!("the first data message left the wire log"))?;
        let window = Duration::from_secs_f64(2.5 * t);
        tokio::time::sleep_until(tokio::time::Instant::from_std(first_at + window)).await;
        let sent = timed(c);
        let gaps: Vec<f64> = sent
            .windows(2)
            .map(|p| p[1].saturating_duration_since(p[0]).as_secs_f64())
            .collect();
        c.note(format!(
            "data message {id}: s between transmissions {gaps:.3?}"
        ));
        if let Some(g) = gaps.first().filter(|g| **g < t / 2.0) {
            bail!(
                "data message {id} sent again {g:.3} s after the first: DES-MSG-DATA-3 waits \
                 ackTimeoutSec ({ACK_TIMEOUT_SEC} s) for its data.ack first"
            );
        }
        let early = sent
            .iter()
            .filter(|at| at.saturating_duration_since(first_at) <= window)
            .count();
        if early > 2 {
            bail!(
                "data message {id} sent {early} times within {:.1} s of the first: DES-MSG-DATA-3 \
                 waits ackTimeoutSec ({ACK_TIMEOUT_SEC} s), then twice that (2 at most)",
                window.as_secs_f64()
            );
        }
        c.faults(FaultConfig::default())?;
        c.wait_all_acknowledged("records stored and acknowledged", 10)
            .await?;
        let ten = c.seq(10);
        let seqs: Vec<u64> = c.stored()?.iter().map(|r| r.seq).collect();
        if seqs != (c.seq(1)..=ten).collect::<Vec<_>>() {
            bail!("stored seqs {seqs:?}");
        }
        Ok(())
    })
}

/// Waits until the resend data on the wire since event `from` covers exactly `want`, each seq
/// once; fails at once on a seq outside it. The resend data messages' summaries.
async fn resend_data_exactly(
    c: &Ctx,
    from: usize,
    want: std::ops::RangeInclusive<u64>,
) -> Result<Vec<String>> {
    Ctx::poll(WAIT, || {
        let resent: Vec<String> = c
            .wire()
            .into_iter()
            .skip(from)
            .filter(|e| e.message_type == "data" && e.summary.contains(" resend "))
            .map(|e| e.summary)
            .collect();
        let mut seqs: Vec<u64> = resent
            .iter()
            .filter_map(|s| data_range(s))
            .flatten()
            .collect();
        seqs.sort_unstable();
        let wrong = format!(
            "resend data {resent:?} does not cover exactly {}..={}",
            want.start(),
            want.end()
        );
        if seqs.iter().any(|q| !want.contains(q)) {
            bail!("{wrong}");
        }
        Ok(match seqs == want.clone().collect::<Vec<u64>>() {
            true => Look::Done(resent),
            false => Look::Not(wrong),
        })
    })
    .await
}

/// A `resend.request` by `time` over `t0..=t1`, in which exactly the records `want` were
/// ingested: answered OK with their count, then resend data covering exactly them
/// (DES-MSG-RS-1/2/3) — counted from the wire log's entry `from` on; `context` is added to a
/// failure. The resend data's summaries.
async fn resend_by_time_exactly(
    c: &Ctx,
    from: usize,
    (t0, t1): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    want: std::ops::RangeInclusive<u64>,
    context: &str,
) -> Result<Vec<String>> {
    let (first, last) = (*want.start(), *want.end());
    let n = last - first + 1;
    let id = c.sent(OperatorCommand::Resend {
        dataset: None,
        seq: None,
        time: Some(time_range(t0, t1)),
    })?;
    let r = c
        .wait_wire(&format!("resend.result to {t0}..={t1}"), WAIT, |e| {
            e.message_type == "resend.result" && e.in_reply_to.as_deref() == Some(id.as_str())
        })
        .await?;
    if r.code.as_deref() != Some("OK") || !r.summary.contains(&format!("\"records\":{n}")) {
        bail!(
            "resend.result {:?} {} to {t0}..={t1}, in which the {n} records {first}..={last} \
             were ingested{context}: OK with {n} records expected (DES-MSG-RS-1/2)",
            r.code,
            r.summary
        );
    }
    resend_data_exactly(c, from, want)
        .await
        .map_err(|e| anyhow!("{e} (ingested in {t0}..={t1}{context})"))
}

/// The end of the current whole second of UTC (the next one's start): the end of a range of
/// ingest times that holds everything answered so far.
fn this_second_ends() -> Result<chrono::DateTime<chrono::Utc>> {
    use chrono::DurationRound;
    let second = chrono::TimeDelta::seconds(1);
    Ok(chrono::Utc::now().duration_trunc(second)? + second)
}

/// Waits until the next whole second of UTC has begun (20 ms into it) and returns it: what is
/// ingested from now on falls in it or later, apart from everything before at any precision a
/// gateway keeps ingest times in.
async fn next_whole_second() -> Result<chrono::DateTime<chrono::Utc>> {
    let t0 = this_second_ends()?;
    let wait = (t0 - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    Ok(t0)
}

/// A DES-ENV-2 time range for a `resend.request`.
fn time_range(
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> gateway::protocol::message::TimeRange {
    gateway::protocol::message::TimeRange {
        from: from.fixed_offset(),
        to: to.fixed_offset(),
    }
}

fn resend_time(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        let three = c.seq(3);
        c.wait_view("3 records at the platform", WAIT, |v| {
            v.highest_seq == three
        })
        .await?;
        // The second upload starts in a later whole second than the first was answered in, so
        // the two files' ingest times fall apart at any precision a gateway keeps them in.
        let t0 = next_whole_second().await?;
        upload_billing(c, "billing_2.csv", 4, c.seed + 1).await?;
        let t1 = this_second_ends()?;
        let (four, seven) = (c.seq(4), c.seq(7));
        c.wait_view("7 records at the platform", WAIT, |v| {
            v.highest_seq == seven
        })
        .await?;
        c.note(format!("t0 {t0}, t1 {t1}"));
        let past =
            |d| chrono::NaiveDate::from_ymd_opt(2000, 1, d).and_then(|d| d.and_hms_opt(0, 0, 0));
        let (Some(p0), Some(p1)) = (past(1), past(2)) else {
            bail!("the year 2000");
        };
        let from = c.wire().len();
        let id = c.sent(OperatorCommand::Resend {
            dataset: None,
            seq: None,
            time: Some(time_range(p0.and_utc(), p1.and_utc())),
        })?;
        let r = c
            .wait_wire("resend.result to a day in 2000", WAIT, |e| {
                e.message_type == "resend.result" && e.in_reply_to.as_deref() == Some(id.as_str())
            })
            .await?;
        if r.code.as_deref() != Some("NOT_FOUND") || !r.summary.contains("\"records\":0") {
            bail!(
                "resend.result {:?} {} to a time range in which nothing was ingested: NOT_FOUND \
                 with 0 records expected (DES-MSG-RS-2)",
                r.code,
                r.summary
            );
        }
        let resent = resend_by_time_exactly(c, from, (t0, t1), four..=seven, "").await?;
        c.note(format!("resend data: {resent:?}"));
        Ok(())
    })
}

fn resend_unknown_dataset(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        let three = c.seq(3);
        c.wait_view("3 records at the platform", WAIT, |v| {
            v.highest_seq == three
        })
        .await?;
        let r = resend_result_of(c, Some("no_such_dataset"), 1, 3).await?;
        let unknown = r.in_reply_to.clone().unwrap_or_default();
        let zero = ["\"records\":0", "\"messages\":0", "\"archived\":0"];
        if r.code.as_deref() != Some("UNKNOWN_DATASET")
            || !zero.iter().all(|z| r.summary.contains(z))
        {
            bail!(
                "resend.result {:?} {} to {}..={three} of `no_such_dataset`: UNKNOWN_DATASET with \
                 {{0,0,0}} expected (DES-MSG-RS-2)",
                r.code,
                r.summary,
                c.seq(1)
            );
        }
        // The known dataset's resend follows; it would be BUSY if the refused one had started
        // a resend (DES-MSG-RS-3).
        resend_runs(c, Some("billing"), 3, &[("billing".to_owned(), 1, 3)]).await?;
        let for_unknown = format!(" for request {unknown}");
        let sent: Vec<String> = c
            .wire()
            .into_iter()
            .filter(|e| e.message_type == "data" && e.summary.ends_with(&for_unknown))
            .map(|e| e.summary)
            .collect();
        if !sent.is_empty() {
            bail!("resend data for the refused request: {sent:?}");
        }
        Ok(())
    })
}

fn resend_seq(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "billing_1.csv", 12, c.seed).await?;
        let twelve = c.seq(12);
        c.wait_view("12 records at the platform", WAIT, |v| {
            v.highest_seq == twelve
        })
        .await?;
        let (three, seven) = (c.seq(3), c.seq(7));
        let range = SeqRange::new(three, seven).ok_or_else(|| anyhow!("range"))?;
        c.command(OperatorCommand::Resend {
            dataset: None,
            seq: Some(range),
            time: None,
        })?;
        let r = c
            .wait_wire("resend.result", WAIT, |e| e.message_type == "resend.result")
            .await?;
        if r.code.as_deref() != Some("OK") || !r.summary.contains("\"records\":5") {
            bail!("resend.result {:?} {}", r.code, r.summary);
        }
        let resent = resend_data_exactly(c, 0, three..=seven).await?;
        c.note(format!("resend data: {resent:?}"));
        // A range partly beyond lastSeq: PARTIAL, and the part held is sent (DES-MSG-RS-2).
        let (eleven, twelve) = (c.seq(11), c.seq(12));
        let beyond = SeqRange::new(eleven, c.seq(15)).ok_or_else(|| anyhow!("range"))?;
        let from = c.wire().len();
        let id = c.sent(OperatorCommand::Resend {
            dataset: None,
            seq: Some(beyond),
            time: None,
        })?;
        let r = c
            .wait_wire("resend.result to a range beyond lastSeq", WAIT, |e| {
                e.message_type == "resend.result" && e.in_reply_to.as_deref() == Some(id.as_str())
            })
            .await?;
        if r.code.as_deref() != Some("PARTIAL") || !r.summary.contains("\"records\":2") {
            bail!(
                "resend.result {:?} {} to {eleven}..={} ({twelve} is lastSeq): PARTIAL with 2 \
                 records expected (DES-MSG-RS-2)",
                r.code,
                r.summary,
                beyond.last
            );
        }
        Ctx::poll(WAIT, || {
            let seqs: Vec<u64> = c
                .wire()
                .into_iter()
                .skip(from)
                .filter(|e| e.message_type == "data" && e.summary.contains(" resend "))
                .filter_map(|e| data_range(&e.summary))
                .flatten()
                .collect();
            Ok(match seqs == [eleven, twelve] {
                true => Look::Done(()),
                false => Look::Not(format!(
                    "resend data {seqs:?} for {eleven}..={}, exactly {eleven}..={twelve} expected",
                    beyond.last
                )),
            })
        })
        .await?;
        // DES-MSG-PS-5: only the start and stop results wait for `ack`; a `resend.result` goes
        // once. Two of the world's `ackTimeoutSec` and a second: a gateway that waits for an
        // `ack` of it has sent it again by then.
        tokio::time::sleep(Duration::from_secs(u64::from(2 * ACK_TIMEOUT_SEC + 1))).await;
        let mut results: Vec<String> = c
            .wire()
            .into_iter()
            .filter(|e| e.direction == "up" && e.message_type == "resend.result")
            .map(|e| e.message_id)
            .collect();
        let sent = results.len();
        results.sort_unstable();
        results.dedup();
        if sent != 2 || results.len() != 2 {
            bail!(
                "{sent} resend.result messages for the two requests ({results:?}): each goes \
                 once, only the start and stop results wait for an ack (DES-MSG-PS-5)"
            );
        }
        Ok(())
    })
}

fn mon_facts(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "a.csv", 5, c.seed).await?;
        upload_billing(c, "b.csv", 7, c.seed + 1).await?;
        // The platform holds the 12 records and has acknowledged every data message.
        let all = c.seq(12);
        Ctx::poll(WAIT, || {
            let wire = c.wire();
            let open = unacknowledged_data(&wire, |_| true).len();
            Ok(match c.view().highest_seq == all && open == 0 {
                true => Look::Done(()),
                false => Look::Not(format!(
                    "the 12 records stored and acknowledged by the platform: not within {} s \
                     ({open} data messages unacknowledged)",
                    WAIT.as_secs()
                )),
            })
        })
        .await?;
        // DES-MSG-MON-1: the figures are at most 10 s old; a status every 2 s
        // (monitorIntervalSec) and 2 s for the way to the platform.
        c.wait_view(
            "a status true to fact, 14 s after the last acknowledgement at most (figures at \
             most 10 s old, DES-MSG-MON-1)",
            Duration::from_secs(14),
            |v| {
                v.last_status.as_ref().is_some_and(|s| {
                    let names: Vec<&str> = s.certificates.iter().map(|c| c.name.as_str()).collect();
                    s.last_seq == 12
                        && s.health == HealthState::Ok
                        && s.storage.records == 12
                        && s.storage.bytes > 0
                        && s.storage.unacked == 0
                        && s.storage.held == 0
                        && s.files_accepted == 2
                        && s.records_acked == 12
                        && s.messages_sent >= 1
                        && ["tls-client", "data-protection", "platform", "root", "crl"]
                            .iter()
                            .all(|n| names.contains(n))
                })
            },
        )
        .await
        .map_err(|e| anyhow!("{e}; last status {:?}", c.view().last_status))?;
        Ok(())
    })
}

// ------------------------------------------------------------------ forged commands

#[derive(Clone, Copy)]
enum Fault {
    Tampered,
    Unsigned,
    Expired,
    Revoked,
    Jose(JoseAttack),
}

/// The case of one JOSE attack class sent as a forged command.
fn jose_case(a: JoseAttack) -> Case {
    let (id, description): (&'static str, &'static str) = match a {
        JoseAttack::AlgNone => (
            "PSTART-JOSE-ALG-NONE",
            "`periodic.start` whose inner JWS has `alg` none and an empty signature, claiming \
             the platform's kid, correctly encrypted to the gateway",
        ),
        JoseAttack::HmacKeyConfusion => (
            "PSTART-JOSE-HMAC-CONFUSION",
            "inner JWS `alg` HS256 keyed with the platform certificate's PEM (key confusion)",
        ),
        JoseAttack::UnsupportedAlg => (
            "PSTART-JOSE-RS512",
            "inner JWS correctly signed by the platform's key with `alg` RS512",
        ),
        JoseAttack::HeaderCrit => (
            "PSTART-JOSE-CRIT",
            "inner JWS correctly signed by the platform's key, header with `crit`",
        ),
        JoseAttack::HeaderJku => (
            "PSTART-JOSE-JKU",
            "inner JWS correctly signed by the platform's key, header with `jku`",
        ),
        JoseAttack::EmbeddedJwk => (
            "PSTART-JOSE-EMBEDDED-JWK",
            "inner JWS signed by an attacker's key embedded as `jwk`, claiming the platform's kid",
        ),
        JoseAttack::DuplicateAlg => (
            "PSTART-JOSE-DUPLICATE-ALG",
            "inner JWS correctly signed by the platform's key over a header with `alg` twice",
        ),
        JoseAttack::WrongTyp => (
            "PSTART-JOSE-WRONG-TYP",
            "inner JWS correctly signed by the platform's key with the profile's `typ`",
        ),
        JoseAttack::UnknownSigner => (
            "PSTART-JOSE-UNKNOWN-SIGNER",
            "inner JWS signed by an unknown RSA-2048 key claiming the platform's kid",
        ),
    };
    Case {
        id,
        requirements: &["IF-PSTART-2", "SEC-JSON-SIG-2", "SM-SIG"],
        rules: match a {
            // Refused header members and identifiers (DES-SEAL-4, DES-PROF-8).
            JoseAttack::AlgNone => &[
                "DES-SEAL-2",
                "DES-SEAL-4",
                "DES-SEAL-5",
                "DES-SEAL-6",
                "DES-PROF-8",
                "DES-MSG-AN-1",
            ],
            JoseAttack::HmacKeyConfusion | JoseAttack::UnsupportedAlg => &[
                "DES-SEAL-2",
                "DES-SEAL-5",
                "DES-SEAL-6",
                "DES-PROF-8",
                "DES-MSG-AN-1",
            ],
            JoseAttack::HeaderCrit
            | JoseAttack::HeaderJku
            | JoseAttack::EmbeddedJwk
            | JoseAttack::DuplicateAlg => &[
                "DES-SEAL-2",
                "DES-SEAL-4",
                "DES-SEAL-5",
                "DES-SEAL-6",
                "DES-MSG-AN-1",
            ],
            _ => &["DES-SEAL-2", "DES-SEAL-5", "DES-SEAL-6", "DES-MSG-AN-1"],
        },
        level: Level::Must,
        negative: true,
        description,
        expectation: "not acted on, not answered; an `anomaly` of kind `security`; a correct \
                      start afterwards is applied",
        needs: Needs::NONE,
        run: forged_case,
    }
}

impl Fault {
    fn description(self) -> &'static str {
        match self {
            Fault::Tampered => "`periodic.start` with one ciphertext byte flipped after sealing",
            Fault::Unsigned => "`periodic.start` encrypted but not signed",
            Fault::Expired => {
                "`periodic.start` signed with an expired platform certificate (issued by the \
                 platform's root, platform role), which the certificate endpoint now serves as \
                 `platform.pem`"
            }
            Fault::Revoked => {
                "`periodic.start` signed with a revoked platform certificate (issued by the \
                 platform's root, platform role, listed in the current CRL), which the \
                 certificate endpoint now serves as `platform.pem`"
            }
            Fault::Jose(_) => "`periodic.start` with a forged inner JWS",
        }
    }

    fn expectation(self) -> &'static str {
        match self {
            Fault::Expired | Fault::Revoked => {
                "the unknown `kid` makes the gateway fetch `platform.pem` (DES-SEAL-6), which it \
                 refuses by its validity period or the CRL: an `anomaly` of kind \
                 `certificate`; the command is not acted on, not answered, an `anomaly` of kind \
                 `security`; a correct start afterwards is applied"
            }
            _ => {
                "not acted on, not answered; an `anomaly` of kind `security`; a correct start \
                 afterwards is applied"
            }
        }
    }

    /// Whether the fault's signer certificate is served as `platform.pem`, so the gateway
    /// must refuse it by DES-CERT-4 once it fetches it.
    fn offers_cert(self) -> bool {
        matches!(self, Fault::Expired | Fault::Revoked)
    }

    fn config(self) -> FaultConfig {
        let mut f = FaultConfig {
            offer_signer_cert: self.offers_cert(),
            ..FaultConfig::default()
        };
        match self {
            Fault::Tampered => f.tamper_commands = 1,
            Fault::Unsigned => f.unsigned_commands = 1,
            Fault::Expired => f.expired_cert_commands = 1,
            Fault::Revoked => f.revoked_cert_commands = 1,
            Fault::Jose(a) => f.jose_attack = Some(a),
        }
        f
    }

    /// The fault a forged-command case sends, from its case ID.
    fn of_case(id: &str) -> Option<Fault> {
        match id {
            "PSTART-TAMPERED" => Some(Fault::Tampered),
            "PSTART-UNSIGNED" => Some(Fault::Unsigned),
            "PSTART-EXPIRED-CERT" => Some(Fault::Expired),
            "PSTART-REVOKED-CERT" => Some(Fault::Revoked),
            _ => JoseAttack::ALL
                .into_iter()
                .find(|a| jose_case(*a).id == id)
                .map(Fault::Jose),
        }
    }
}

/// Every forged-command case: the fault is the one its ID names ([`Fault::of_case`]).
/// What the gateway does with a start (for the resend attacks and `Version2` also a
/// `resend.request`) broken by an [`EnvelopeAttack`] (docs/protocol.md §6.10): its reply code
/// (`None`: not answered) and the kind of the anomaly it reports (`None`: none required).
fn envelope_expected(a: EnvelopeAttack) -> (Option<&'static str>, Option<AnomalyKind>) {
    use EnvelopeAttack as A;
    match a {
        A::Oversize => (Some("TOO_LARGE"), Some(AnomalyKind::Malformed)),
        A::NotJson | A::OversizePayload => (None, Some(AnomalyKind::Malformed)),
        A::DuplicateMember | A::UnknownMember => (Some("MALFORMED"), Some(AnomalyKind::Malformed)),
        A::Version2 => (Some("UNSUPPORTED_VERSION"), Some(AnomalyKind::Malformed)),
        A::Ext => (Some("OK"), None),
        A::ForeignGatewayId => (Some("UNAUTHORIZED"), Some(AnomalyKind::Unauthorized)),
        A::OldCommandSeq => (Some("SUPERSEDED"), None),
        A::ResendBoth
        | A::ResendNeither
        | A::ResendUnorderedSeq
        | A::ResendSeqZero
        | A::ResendUnorderedTime => (Some("MALFORMED"), Some(AnomalyKind::Malformed)),
    }
}

fn envelope_case(a: EnvelopeAttack) -> Case {
    use EnvelopeAttack as A;
    let (id, rules, description): (&'static str, &'static [&'static str], &'static str) = match a {
        A::Oversize => (
            "PSTART-ENV-OVERSIZE",
            &["DES-ENV-5", "DES-MSG-2", "DES-MSG-3"],
            "`periodic.start` correctly sealed around an envelope of over 256 KiB (a long `ext`)",
        ),
        A::NotJson => (
            "PSTART-ENV-NOT-JSON",
            &["DES-ENV-1", "DES-MSG-2", "DES-MSG-3"],
            "`periodic.start` correctly sealed around bytes that are not JSON (a prefix before \
             the envelope); the platform later retransmits it intact",
        ),
        A::DuplicateMember => (
            "PSTART-ENV-DUPLICATE-MEMBER",
            &["DES-ENV-1", "DES-MSG-2", "DES-MSG-3"],
            "`periodic.start` correctly sealed around an envelope with the member `version` twice",
        ),
        A::Version2 => (
            "PSTART-ENV-VERSION-2",
            &["DES-VER-2", "DES-MSG-2", "DES-MSG-3"],
            "`periodic.start` correctly sealed, `version` 2",
        ),
        A::UnknownMember => (
            "PSTART-ENV-UNKNOWN-MEMBER",
            &["DES-VER-3", "DES-MSG-2", "DES-MSG-3"],
            "`periodic.start` correctly sealed, an unknown member in its body",
        ),
        A::Ext => (
            "PSTART-ENV-EXT",
            &["DES-VER-3"],
            "`periodic.start` correctly sealed with an `ext` member (reserved for extensions)",
        ),
        A::ForeignGatewayId => (
            "PSTART-ENV-FOREIGN-GATEWAY-ID",
            &["DES-ENV-4", "DES-MSG-3"],
            "`periodic.start` correctly sealed on the gateway's own topic, `gatewayId` another \
             gateway's",
        ),
        A::OversizePayload => (
            "PSTART-PAYLOAD-OVER-1MIB",
            &["DES-MQTT-7", "DES-MSG-3"],
            "instead of a `periodic.start` token, an MQTT payload of 1 MiB + 16 bytes (within the \
             broker's packet limit) on the command's topic; the platform later retransmits the \
             command intact",
        ),
        A::OldCommandSeq => (
            "PSTART-OLD-COMMAND-SEQ",
            &["DES-MSG-PS-4", "DES-MSG-3"],
            "after a start (commandSeq 1) and a stop (2), a `periodic.start` correctly sealed \
             with `commandSeq` 2 (equal to the last applied)",
        ),
        A::ResendBoth => (
            "RESEND-BODY-BOTH",
            &["DES-MSG-RS-1", "DES-MSG-2", "DES-MSG-3"],
            "3 records acknowledged; a `resend.request` of them by `seq` that also carries a \
             `time` range, correctly sealed",
        ),
        A::ResendNeither => (
            "RESEND-BODY-NEITHER",
            &["DES-MSG-RS-1", "DES-MSG-2", "DES-MSG-3"],
            "3 records acknowledged; a `resend.request` with neither `seq` nor `time`, correctly \
             sealed",
        ),
        A::ResendUnorderedSeq => (
            "RESEND-BODY-UNORDERED-SEQ",
            &["DES-MSG-RS-1", "DES-ID-4", "DES-MSG-2", "DES-MSG-3"],
            "3 records acknowledged; a `resend.request` of them by `seq` with `first` and `last` \
             swapped (first > last), correctly sealed",
        ),
        A::ResendSeqZero => (
            "RESEND-BODY-SEQ-ZERO",
            &["DES-ID-4", "DES-MSG-2", "DES-MSG-3"],
            "3 records acknowledged; a `resend.request` by `seq` whose `first` is 0, correctly \
             sealed",
        ),
        A::ResendUnorderedTime => (
            "RESEND-BODY-UNORDERED-TIME",
            &["DES-MSG-RS-1", "DES-MSG-2", "DES-MSG-3"],
            "3 records acknowledged; a `resend.request` by `time` whose `from` is a day after \
             its `to`, correctly sealed",
        ),
    };
    if EnvelopeAttack::RESEND_BODY.contains(&a) {
        return Case {
            id,
            requirements: &["IF-RESEND-1", "SM-THRESHOLD", "SM-AUDIT"],
            rules,
            level: Level::Must,
            negative: true,
            description,
            expectation: "answered MALFORMED with the neutral body of a resend's reply, \
                          records, messages and archived 0 (§6.10, DES-MSG-2); an `anomaly` of \
                          kind `malformed`; not acted on (no resend data for it); then the same \
                          records' correct resend answered OK (not BUSY: the refused request \
                          started none) and served",
            needs: Needs::NONE,
            run: resend_attack_case,
        };
    }
    let expectation: &'static str = match a {
        A::NotJson => {
            "not answered (not peekable), not acted on; an `anomaly` of kind `malformed`; the \
             intact retransmission is applied"
        }
        A::OversizePayload => {
            "dropped unopened, not answered; an `anomaly` of kind `malformed` naming TOO_LARGE; \
             the gateway stays connected and the intact retransmission is applied"
        }
        A::Ext => "`ext` ignored: the start is applied and answered OK; no `malformed` anomaly",
        A::OldCommandSeq => {
            "answered SUPERSEDED with the current (stopped) state; nothing changes (an upload \
             is still refused 450)"
        }
        A::ForeignGatewayId => {
            "answered UNAUTHORIZED with the neutral body (not running); an `anomaly` of kind \
             `unauthorized`; not acted on; a correct start afterwards is applied"
        }
        _ => {
            "answered with the code of §6.10 (TOO_LARGE, MALFORMED, UNSUPPORTED_VERSION) and \
             the neutral body (not running); an `anomaly` of kind `malformed`; not acted on; a \
             correct start afterwards is applied"
        }
    };
    Case {
        id,
        requirements: &["IF-PSTART-1", "SM-THRESHOLD", "SM-AUDIT"],
        rules,
        level: Level::Must,
        negative: a != A::Ext,
        description,
        expectation,
        needs: Needs::NONE,
        run: envelope_attack_case,
    }
}

fn pstop_env_version_2(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let a = EnvelopeAttack::Version2;
        c.started(ProfileFormat::Json).await?;
        let anomalies = c.gateway_anomalies().len();
        c.faults(FaultConfig {
            envelope_attack: Some(a),
            ..FaultConfig::default()
        })?;
        c.command(OperatorCommand::Stop)?;
        let forged = c
            .wait_wire("the broken stop", WAIT, |e| {
                e.message_type == "periodic.stop" && e.fault.as_deref() == Some(a.name())
            })
            .await?;
        let id = forged.message_id.clone();
        let r = c
            .wait_wire("its periodic.stop.result", WAIT, |e| {
                e.message_type == "periodic.stop.result"
                    && e.in_reply_to.as_deref() == Some(id.as_str())
            })
            .await?;
        if r.code.as_deref() != Some("UNSUPPORTED_VERSION") {
            bail!(
                "the stop of version 2 answered {:?} {}: UNSUPPORTED_VERSION expected (§6.10)",
                r.code,
                r.summary
            );
        }
        // DES-MSG-2: the neutral body of a stop's reply is the current periodic state, which
        // the refused stop did not change.
        if !r.summary.contains("\"running\":true") {
            bail!(
                "the reply's body is {}: the current periodic state (running) expected, the \
                 neutral body of a stop's reply (DES-MSG-2)",
                r.summary
            );
        }
        c.wait_gateway_anomaly_after(
            "an anomaly of kind malformed",
            anomalies,
            AnomalyKind::Malformed,
            |_| true,
        )
        .await?;
        Ok(())
    })
}

/// RESEND-ENV-VERSION-2 and the RESEND-BODY-* family: a broken `resend.request` refused with
/// the neutral body, reported, not acted on; the correct request afterwards served.
fn resend_attack_case(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let a = match c.case_id.as_str() {
            "RESEND-ENV-VERSION-2" => EnvelopeAttack::Version2,
            id => attack_of(&EnvelopeAttack::RESEND_BODY, envelope_case, id)?,
        };
        let (Some(code), _) = envelope_expected(a) else {
            bail!(
                "{} leaves a request unanswered: not a resend attack",
                a.name()
            );
        };
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        c.wait_all_acknowledged("3 records acknowledged", 3).await?;
        let anomalies = c.gateway_anomalies().len();
        c.faults(FaultConfig {
            envelope_attack: Some(a),
            ..FaultConfig::default()
        })?;
        let r = resend_result(c, 1, 3).await?;
        let forged = c
            .wire()
            .into_iter()
            .find(|e| Some(e.message_id.as_str()) == r.in_reply_to.as_deref())
            .ok_or_else(|| anyhow!("the resend.request answered is not in the wire log"))?;
        if forged.fault.as_deref() != Some(a.name()) {
            bail!("the suite's fault did not break the resend.request: nothing proved");
        }
        let zero = ["\"records\":0", "\"messages\":0", "\"archived\":0"];
        if r.code.as_deref() != Some(code) || !zero.iter().all(|z| r.summary.contains(z)) {
            bail!(
                "the resend.request broken by {} answered {:?} {}: {code} with the neutral body \
                 of a resend's reply, records, messages and archived 0, expected (§6.10, \
                 DES-MSG-2)",
                a.name(),
                r.code,
                r.summary
            );
        }
        c.wait_gateway_anomaly_after(
            "an anomaly of kind malformed",
            anomalies,
            AnomalyKind::Malformed,
            |_| true,
        )
        .await?;
        // Not acted on: no resend data names it.
        let for_it = format!(" for request {}", forged.message_id);
        if let Some(e) = c
            .wire()
            .into_iter()
            .find(|e| e.message_type == "data" && e.summary.ends_with(&for_it))
        {
            bail!(
                "resend data {} ({}) sent for the refused request (§6.10: not acted on)",
                e.message_id,
                e.summary
            );
        }
        // The gateway still serves the same records' correct request (and the refused one
        // started no resend: not BUSY).
        let from = c.wire().len();
        let r = resend_result(c, 1, 3).await?;
        if r.code.as_deref() != Some("OK") || !r.summary.contains("\"records\":3") {
            bail!(
                "the correct resend.request after the refused one answered {:?} {}: OK with 3 \
                 records expected",
                r.code,
                r.summary
            );
        }
        resend_data_exactly(c, from, c.seq(1)..=c.seq(3)).await?;
        Ok(())
    })
}

/// The one of `all` whose case (`case_of`) is the running case `id`: the cases of a fault
/// family share one run function.
fn attack_of<T: Copy>(all: &[T], case_of: fn(T) -> Case, id: &str) -> Result<T> {
    all.iter()
        .copied()
        .find(|a| case_of(*a).id == id)
        .ok_or_else(|| anyhow!("no fault of this family for case {id}"))
}

fn envelope_attack_case(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let a = attack_of(&EnvelopeAttack::ANY_COMMAND, envelope_case, &c.case_id)?;
        let (code, kind) = envelope_expected(a);
        if a == EnvelopeAttack::OldCommandSeq {
            c.started(ProfileFormat::Json).await?;
            c.command(OperatorCommand::Stop)?;
            c.wait_wire("periodic.stop.result OK", WAIT, |e| {
                e.message_type == "periodic.stop.result" && e.code.as_deref() == Some("OK")
            })
            .await?;
        } else {
            c.session().await?;
        }
        let since = c.wire().len();
        c.faults(FaultConfig {
            envelope_attack: Some(a),
            ..FaultConfig::default()
        })?;
        c.command(OperatorCommand::Start {
            datasets: vec![],
            interval_sec: 1,
            format: ProfileFormat::Json,
        })?;
        let forged = c
            .wait_wire("the broken start", WAIT, |e| {
                e.message_type == "periodic.start" && e.fault.as_deref() == Some(a.name())
            })
            .await?;
        let id = forged.message_id.clone();
        c.note(format!("sent {id} ({})", a.name()));
        if let Some(kind) = kind {
            // DES-MQTT-7: the anomaly names TOO_LARGE.
            let names_it = |x: &platform_sim::ops::AnomalyView| {
                a != EnvelopeAttack::OversizePayload || x.detail.contains("TOO_LARGE")
            };
            c.wait_gateway_anomaly(&format!("an anomaly of kind {kind:?}"), kind, names_it)
                .await?;
        }
        match code {
            Some(code) => {
                let r = c
                    .wait_wire(&format!("periodic.start.result {code}"), WAIT, |e| {
                        e.message_type == "periodic.start.result"
                            && e.in_reply_to.as_deref() == Some(id.as_str())
                    })
                    .await?;
                if r.code.as_deref() != Some(code) {
                    bail!(
                        "the broken start answered {:?} {}: {code} expected (§6.10)",
                        r.code,
                        r.summary
                    );
                }
                let running = r.summary.contains("\"running\":true");
                if running != (code == "OK") {
                    bail!(
                        "the reply's state is {}: {} expected",
                        r.summary,
                        if code == "OK" {
                            "running"
                        } else {
                            "not running (neutral body)"
                        }
                    );
                }
            }
            None => {
                // Not answered: whatever answers its messageId comes after an intact
                // retransmission of it (the platform retries an unanswered command).
                let wire = c.wire();
                let retry_at = wire
                    .iter()
                    .skip(since)
                    .position(|e| e.message_id == id && e.direction == "down" && e.fault.is_none());
                let reply_at = wire
                    .iter()
                    .skip(since)
                    .position(|e| e.in_reply_to.as_deref() == Some(id.as_str()));
                match (retry_at, reply_at) {
                    (_, None) => {}
                    (Some(r), Some(a)) if r < a => {}
                    _ => bail!("the broken start was answered"),
                }
            }
        }
        if a == EnvelopeAttack::Ext {
            if let Some(x) = c
                .view()
                .anomalies
                .iter()
                .find(|x| x.source == "gateway" && x.kind == AnomalyKind::Malformed)
            {
                bail!("`ext` refused: anomaly {} {}", x.rule, x.detail);
            }
            return Ok(());
        }
        // Not acted on: storing is still stopped. (Not for the unanswered one: the platform's
        // intact retransmission, applied, may come first.)
        if !matches!(a, EnvelopeAttack::NotJson | EnvelopeAttack::OversizePayload) {
            match upload_billing(c, "x.csv", 2, c.seed).await {
                Ok(_) => bail!("an upload was accepted: the broken start was applied"),
                Err(e) if e.to_string().contains("replied 450") => {}
                Err(e) => bail!("upload: {e} (450 expected)"),
            }
            if a == EnvelopeAttack::OldCommandSeq {
                return Ok(());
            }
            // The gateway still answers a correct start.
            c.command(OperatorCommand::Start {
                datasets: vec![],
                interval_sec: 1,
                format: ProfileFormat::Json,
            })?;
        }
        c.wait_wire("periodic.start.result OK for a correct start", WAIT, |e| {
            e.message_type == "periodic.start.result" && e.code.as_deref() == Some("OK")
        })
        .await?;
        Ok(())
    })
}

fn pstart_result_unacked(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.session().await?;
        c.faults(FaultConfig {
            withhold_acks: true,
            ..FaultConfig::default()
        })?;
        let id = c.sent(OperatorCommand::Start {
            datasets: vec![],
            interval_sec: 1,
            format: ProfileFormat::Json,
        })?;
        let first = c
            .wait_wire("periodic.start.result", WAIT, |e| {
                e.message_type == "periodic.start.result"
                    && e.in_reply_to.as_deref() == Some(id.as_str())
            })
            .await?;
        if first.code.as_deref() != Some("OK") {
            bail!("the start answered {:?} {}", first.code, first.summary);
        }
        // 5 re-sends `ackTimeoutSec` (2 s) apart: the anomaly comes some 12 s later.
        c.wait_gateway_anomaly(
            "an anomaly malformed DES-MSG-PS-5 (the result never acknowledged)",
            AnomalyKind::Malformed,
            |a| a.rule == "DES-MSG-PS-5",
        )
        .await
        .map_err(|e| {
            let n = c
                .wire()
                .iter()
                .filter(|w| w.message_type == "periodic.start.result")
                .count();
            anyhow!("{e}; the result was sent {n} times")
        })?;
        let results: Vec<WireEvent> = c
            .wire()
            .into_iter()
            .filter(|w| w.message_type == "periodic.start.result")
            .collect();
        let ids: std::collections::BTreeSet<&str> =
            results.iter().map(|w| w.message_id.as_str()).collect();
        c.note(format!(
            "periodic.start.result sent {} times, messageIds {ids:?}",
            results.len()
        ));
        if results.len() != 6 || ids.len() != 1 {
            bail!(
                "periodic.start.result sent {} times under {} messageId(s): 6 times, one \
                 messageId expected (DES-MSG-PS-5: 5 re-sends of the same result)",
                results.len(),
                ids.len()
            );
        }
        // Each re-send waits `ackTimeoutSec` for the `ack` first: re-send k comes k times
        // `ackTimeoutSec` after the first transmission at the earliest. Arrival times: delivery
        // may shift one message against the others by up to half of it, and a transmission that
        // arrives late does not delay the later ones (a 20-run series once saw the gaps 2.0,
        // 2.0, 2.0, 3.1, 0.9 s from a gateway on schedule).
        let at: Vec<std::time::Instant> = c
            .wire_timed()
            .into_iter()
            .filter(|(w, _)| w.message_type == "periodic.start.result")
            .map(|(_, t)| t)
            .collect();
        let since_first: Vec<f64> = at
            .iter()
            .map(|t| t.saturating_duration_since(at[0]).as_secs_f64())
            .collect();
        c.note(format!(
            "s after the first transmission: {:.3?}",
            &since_first[1..]
        ));
        let slack = f64::from(ACK_TIMEOUT_SEC) / 2.0;
        if let Some((k, t)) = since_first
            .iter()
            .enumerate()
            .skip(1)
            .find(|(k, t)| **t < *k as f64 * f64::from(ACK_TIMEOUT_SEC) - slack)
        {
            bail!(
                "re-send {k} of the periodic.start.result came {t:.3} s after the first \
                 transmission, {:.1} s expected at the earliest: DES-MSG-PS-5 re-sends only \
                 when no ack arrived within ackTimeoutSec ({ACK_TIMEOUT_SEC} s) of the \
                 transmission before",
                k as f64 * f64::from(ACK_TIMEOUT_SEC) - slack
            );
        }
        // The state is kept: sending started.
        upload_billing(c, "after.csv", 2, c.seed).await?;
        c.faults(FaultConfig::default())?;
        c.wait_all_acknowledged("the upload delivered", 2).await?;
        Ok(())
    })
}

fn data_ack_busy(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        c.faults(FaultConfig {
            busy_acks: 2,
            ..FaultConfig::default()
        })?;
        upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        let busy = c
            .wait_wire("a data.ack BUSY", WAIT, |e| {
                e.message_type == "data.ack" && e.code.as_deref() == Some("BUSY")
            })
            .await?;
        let data_id = busy.in_reply_to.clone().unwrap_or_default();
        // The message answered BUSY first is sent again under its messageId before anything
        // else could settle its records: its timeout (2 s) comes before the case's platform
        // asks for the hole (`Needs::patient_gaps`: 5 s after a status shows it, DES-MSG-RS-4;
        // with the run's 1 s the two met within milliseconds).
        wait_sent_again(c, &data_id).await.map_err(|e| {
            anyhow!(
                "{e}: data {data_id}, answered BUSY, stays in flight and goes again \
                     (DES-MSG-DATA-2, DES-MSG-DATA-3); the gateway's anomalies {:?}",
                c.gateway_anomalies()
            )
        })?;
        c.wait_all_acknowledged("the 3 records acknowledged after the BUSY answers", 3)
            .await?;
        exactly_once(c, 3)?;
        let given_up: Vec<String> = c
            .gateway_anomalies()
            .into_iter()
            .filter(|a| a.contains("DES-MSG-DATA-5"))
            .collect();
        if !given_up.is_empty() {
            bail!("data given up after a BUSY answer: {given_up:?} (DES-MSG-DATA-2)");
        }
        let answers: Vec<String> = c
            .wire()
            .iter()
            .filter(|e| e.message_type == "data.ack")
            .map(|e| format!("{:?} to {:?}", e.code, e.in_reply_to))
            .collect();
        c.note(format!("data.ack answers: {answers:?}"));
        Ok(())
    })
}

/// Waits until the gateway has sent the data message `data_id` a second time (under the same
/// messageId: not acknowledged, it stays in flight, DES-MSG-DATA-3).
async fn wait_sent_again(c: &Ctx, data_id: &str) -> Result<()> {
    Ctx::poll(WAIT, || {
        let n = c
            .wire()
            .iter()
            .filter(|e| e.message_type == "data" && e.direction == "up" && e.message_id == data_id)
            .count();
        Ok(match n {
            n if n >= 2 => Look::Done(()),
            n => Look::Not(format!("data {data_id} sent {n} time(s)")),
        })
    })
    .await
}

/// The `data.ack` codes DATA-ACK-CODES answers with that give a data message up
/// (DES-MSG-DATA-5 (b); UNKNOWN_DATASET is DATA-REFUSED's).
const GIVE_UP_CODES: [ResultCode; 4] = [
    ResultCode::Malformed,
    ResultCode::SecurityFailed,
    ResultCode::InvalidState,
    ResultCode::TooLarge,
];

fn data_ack_codes(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        // Uploads `name`, its data answered `code`: the data message's ID and when the answer
        // was seen.
        async fn answered(
            c: &Ctx,
            code: ResultCode,
            name: &str,
            seed: u64,
        ) -> Result<(String, std::time::Instant)> {
            c.faults(FaultConfig {
                ack_code: Some(code),
                ..FaultConfig::default()
            })?;
            upload_billing(c, name, 3, seed).await?;
            let ack = c
                .wait_wire(&format!("a data.ack {}", code.as_str()), WAIT, |e| {
                    e.message_type == "data.ack" && e.code.as_deref() == Some(code.as_str())
                })
                .await?;
            Ok((
                ack.in_reply_to.unwrap_or_default(),
                std::time::Instant::now(),
            ))
        }
        // INTERNAL: kept in flight, sent again, acknowledged (DES-MSG-DATA-2); its timeout
        // (2 s) comes before the platform asks for the hole (`Needs::patient_gaps`).
        let (id, _) = answered(c, ResultCode::Internal, "codes_1.csv", c.seed).await?;
        wait_sent_again(c, &id).await.map_err(|e| {
            anyhow!(
                "{e}: data {id}, answered INTERNAL, stays in flight and goes again \
                 (DES-MSG-DATA-2); the gateway's anomalies {:?}",
                c.gateway_anomalies()
            )
        })?;
        c.wait_all_acknowledged("the 3 records answered INTERNAL first, acknowledged", 3)
            .await?;
        if let Some(a) = c
            .gateway_anomalies()
            .into_iter()
            .find(|a| a.contains("DES-MSG-DATA-5"))
        {
            bail!("data given up after a data.ack INTERNAL: {a} (DES-MSG-DATA-2)");
        }
        // The four codes that give a message up (DES-MSG-DATA-5 (b)).
        let mut given_up = Vec::new();
        let mut last_answer = None;
        for (k, code) in (1u64..).zip(GIVE_UP_CODES) {
            let (first, last) = (c.seq(3 * k + 1), c.seq(3 * k + 3));
            let name = format!("codes_{}.csv", k + 1);
            let (id, at) = answered(c, code, &name, c.seed + k).await?;
            let kind = match code {
                ResultCode::SecurityFailed => AnomalyKind::Security,
                _ => AnomalyKind::Malformed,
            };
            c.wait_view(
                &format!(
                    "the given-up anomaly ({kind:?}, DES-MSG-DATA-5) for {}",
                    code.as_str()
                ),
                WAIT,
                |v| {
                    v.anomalies.iter().any(|a| {
                        given_up_anomaly(a, kind, "billing", first, last)
                            && a.detail.contains(code.as_str())
                    })
                },
            )
            .await
            .map_err(|e| {
                anyhow!(
                    "{e}: data {id} of {first}..={last} answered {} is given up at once; the \
                     gateway's anomalies: {:?}",
                    code.as_str(),
                    c.gateway_anomalies()
                )
            })?;
            given_up.push((code, id, first, last));
            last_answer = Some(at);
            // Delivered by a resend before the next round, whose fault is meant for the next
            // upload's data and not for that resend's. The case asks (its platform's gap
            // detection waits 5 s, `Needs::patient_gaps`).
            c.command(OperatorCommand::Resend {
                dataset: None,
                seq: SeqRange::new(first, last),
                time: None,
            })?;
            c.wait_all_acknowledged(
                &format!(
                    "the records answered {} delivered by a resend",
                    code.as_str()
                ),
                3 * k + 3,
            )
            .await?;
        }
        // Held, not in flight: none of the four goes again (an ack timeout is 2 s), and their
        // records reached the platform only in resend data.
        if let Some(at) = last_answer {
            tokio::time::sleep(
                (at + Duration::from_secs(5)).saturating_duration_since(std::time::Instant::now()),
            )
            .await;
        }
        c.wait_all_acknowledged("every record at the platform, acknowledged", 15)
            .await?;
        exactly_once(c, 15)?;
        let wire = c.wire();
        for (code, id, first, last) in &given_up {
            let sent = wire
                .iter()
                .filter(|e| e.message_type == "data" && e.direction == "up" && e.message_id == *id)
                .count();
            if sent != 1 {
                bail!(
                    "data {id} of {first}..={last}, answered {}, sent {sent} times: given up \
                     at once, never sent again, expected (DES-MSG-DATA-5 (b))",
                    code.as_str()
                );
            }
            let other: Vec<&str> = wire
                .iter()
                .filter(|e| {
                    e.message_type == "data"
                        && e.direction == "up"
                        && e.message_id != *id
                        && e.summary.contains(" periodic ")
                        && data_range(&e.summary)
                            .is_some_and(|r| *r.start() <= *last && *first <= *r.end())
                })
                .map(|e| e.message_id.as_str())
                .collect();
            if !other.is_empty() {
                bail!(
                    "the held records {first}..={last} (answered {}) sent again by periodic \
                     sending in {other:?}: held records go only in answer to a resend \
                     (DES-MSG-DATA-5)",
                    code.as_str()
                );
            }
        }
        Ok(())
    })
}

fn reply_case(a: ReplyAttack) -> Case {
    let (id, rules, description): (&'static str, &'static [&'static str], &'static str) = match a {
        ReplyAttack::UnknownCode => (
            "DATA-ACK-UNKNOWN-CODE",
            &["DES-RC-2", "DES-MSG-2", "DES-MSG-DATA-3"],
            "the `data.ack` of an upload's data carries a result code v1 does not know (a later \
             version's), correctly sealed",
        ),
        ReplyAttack::LongReason => (
            "DATA-ACK-LONG-REASON",
            &["DES-ENV-6", "DES-MSG-2", "DES-MSG-DATA-3"],
            "the `data.ack` of an upload's data carries a `result.reason` of 1025 bytes, \
             correctly sealed",
        ),
        ReplyAttack::OtherRange => (
            "DATA-ACK-OTHER-RANGE",
            &["DES-MSG-DATA-2", "DES-MSG-DATA-3"],
            "the `data.ack` of an upload's data (3 records in one message) names a range one seq \
             longer than the message's, correctly sealed, result OK",
        ),
    };
    Case {
        id,
        requirements: &["IF-PSEND-3", "SM-THRESHOLD", "SM-RESEND"],
        rules,
        level: Level::Must,
        negative: true,
        description,
        expectation: "the reply is MALFORMED to a v1 gateway: not acted on (the data is not \
                      taken as acknowledged), not answered, an `anomaly` of kind `malformed`; \
                      the same data message is sent again and, acknowledged correctly, every \
                      record reaches the platform once",
        needs: Needs::NONE,
        run: reply_attack_case,
    }
}

fn reply_attack_case(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let a = attack_of(&ReplyAttack::ALL, reply_case, &c.case_id)?;
        c.started(ProfileFormat::Json).await?;
        c.faults(FaultConfig {
            reply_attack: Some(a),
            ..FaultConfig::default()
        })?;
        upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        let broken = c
            .wait_wire("the broken data.ack", WAIT, |e| {
                e.message_type == "data.ack" && e.fault.as_deref() == Some(a.name())
            })
            .await?;
        let data_id = broken.in_reply_to.clone().unwrap_or_default();
        c.wait_gateway_anomaly(
            "an anomaly of kind malformed (the reply refused)",
            AnomalyKind::Malformed,
            |_| true,
        )
        .await?;
        // Not taken as acknowledged: the same message goes again (ackTimeoutSec 2).
        wait_sent_again(c, &data_id)
            .await
            .map_err(|e| anyhow!("{e}: the refused acknowledgement was taken (DES-MSG-2)"))?;
        if c.wire().iter().any(|e| {
            e.direction == "up" && e.in_reply_to.as_deref() == Some(broken.message_id.as_str())
        }) {
            bail!("the broken data.ack was answered (replies are never answered, DES-MSG-2)");
        }
        c.wait_all_acknowledged("the 3 records acknowledged", 3)
            .await?;
        exactly_once(c, 3)
    })
}

fn app_cert_wrong_role(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let fault = FaultConfig {
            rogue_app: true,
            ..FaultConfig::default()
        };
        refused_at_start_fetch(c, fault, Some("rogue")).await?;
        upload_billing(c, "after.csv", 3, c.seed).await?;
        c.wait_all_acknowledged("3 records at the platform", 3)
            .await?;
        Ok(())
    })
}

fn mqtt_session(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        c.wait_all_acknowledged("3 records at the platform", 3)
            .await?;
        let p = c.mqtt_publishes();
        c.note(format!("PUBLISH packets: {p:?}"));
        if p.by_qos[1] == 0 || p.by_qos[0] + p.by_qos[2] > 0 || p.retained > 0 {
            bail!(
                "PUBLISH packets by QoS 0/1/2 {:?}, {} retained: every one QoS 1, retain false \
                 (DES-MQTT-6)",
                p.by_qos,
                p.retained
            );
        }
        let connects = c.mqtt_connects();
        c.note(format!("CONNECT packets: {connects:?}"));
        if connects.is_empty() {
            bail!("no MQTT CONNECT of the gateway seen by the broker");
        }
        let keep_alive = c.cfg.platform.keep_alive_sec.0;
        for f in &connects {
            let wrong = [
                (
                    f.level != 4,
                    format!("protocol level {} (MQTT 3.1.1 is 4)", f.level),
                ),
                (
                    f.client_id != c.gw.as_str(),
                    format!(
                        "client ID {:?}, not the gateway ID (DES-MQTT-2)",
                        f.client_id
                    ),
                ),
                (
                    !f.clean_session,
                    "clean session false (DES-MQTT-5)".to_owned(),
                ),
                (
                    u64::from(f.keep_alive_sec) != keep_alive,
                    format!(
                        "keep-alive {} s, gateway.toml says {keep_alive} (DES-MQTT-5)",
                        f.keep_alive_sec
                    ),
                ),
                (f.will, "a will message (DES-MQTT-5: none)".to_owned()),
                (
                    f.username || f.password,
                    "a user name or password (DES-MQTT-1: not used)".to_owned(),
                ),
            ];
            if let Some((_, why)) = wrong.into_iter().find(|(bad, _)| *bad) {
                bail!("CONNECT: {why}");
            }
        }
        Ok(())
    })
}

/// Connect refusals answered BUSY per round of CONNECT-BACKOFF.
const BUSY_CONNECTS: usize = 4;

fn connect_backoff(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let first = backoff_round(c, 1, Begin::Start, 0).await?;
        c.stop_gateway().await?;
        let second = backoff_round(c, 2, Begin::Start, 0).await?;
        // DES-MQTT-8: the jitter comes from a secure source at each start, so a restart draws
        // other factors. Noise of delivery is some milliseconds; two independent draws agree
        // within 50 ms at all four retries with probability about 2.5e-5.
        let apart = first.iter().zip(&second).any(|(a, b)| (a - b).abs() > 0.05);
        if !apart {
            bail!(
                "the two starts waited the same back-off within 50 ms at every retry ({first:.3?} \
                 s, then {second:.3?} s): the jitter is not drawn afresh at each start (DES-MQTT-8)"
            );
        }
        // The count resets only after a session that lasted 60 s: the second start's session
        // lasted seconds when its connection is cut, so the next refusal is the fifth.
        backoff_round(c, 3, Begin::CutShort, 0).await?;
        Ok(())
    })
}

fn connect_backoff_reset(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        // The broker closes the gateway's first 3 connections unanswered: the transport count
        // (a) is 3 when the session begins, the `connect` count (b) 4.
        backoff_round(c, 1, Begin::Start, 3).await?;
        // DES-MQTT-8: a session of over 60 s resets both counts, so after the cut the refused
        // connection and the BUSY are the first again (d_1: 0.5 to 1 s, not d_4's 4 to 8 s
        // nor d_5's 8 to 16 s).
        backoff_round(c, 2, Begin::CutLong, 1).await?;
        Ok(())
    })
}

fn anomaly_offline(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        // Three `connect`s answered BUSY: out of session for the back-off's first three waits
        // (3.5 s at their shortest, DES-MQTT-8).
        c.faults(FaultConfig {
            busy_connects: 3,
            ..FaultConfig::default()
        })?;
        c.start_gateway().await?;
        c.wait_wire("a connect answered BUSY", WAIT, |e| {
            e.message_type == "connect.result" && e.code.as_deref() == Some("BUSY")
        })
        .await?;
        // Periodic sending not started: each upload is refused 450 and reported (DES-FTP-6) —
        // more than the rate limit lets out in one window (DES-MSG-AN-2: 10 per kind per 60 s).
        const REFUSED: u64 = 12;
        let target = c.ftp_target("billing")?;
        let mut s = Session::open_as(&target, &target.password)
            .await
            .map_err(|e| anyhow!("FTP session: {e}"))?;
        for n in 1..=REFUSED {
            let name = format!("offline_{n}.csv");
            let code = stor_reply(&mut s, &name, &marked_file(n, 2)?).await?;
            if code != 450 {
                bail!("{name}, before any start, answered {code}: 450 expected (DES-FTP-6)");
            }
        }
        s.quit().await;
        if c.wire_count(is_session) > 0 {
            bail!(
                "the session began before the {REFUSED} uploads were refused: their anomalies \
                 were not all detected out of session, nothing proved"
            );
        }
        c.note(format!(
            "{REFUSED} uploads refused 450 while the gateway's connects were answered BUSY"
        ));
        // DES-MSG-AN-2: kept in the offline queue and sent once the session begins (after the
        // first status, DES-MSG-CONN-3), subject to the rate limit; the excess is counted.
        let st = c
            .wait_view(
                "a status counting the 12 anomalies, 2 of them not sent (DES-MSG-AN-2: the \
                 offline queue is sent subject to the rate limit of 10 per kind per 60 s)",
                WAIT,
                |v| {
                    v.last_status.as_ref().is_some_and(|s| {
                        s.anomalies >= REFUSED && s.anomalies_dropped >= REFUSED - 10
                    })
                },
            )
            .await
            .map_err(|e| {
                anyhow!(
                    "{e}; sessions {}; the gateway's anomalies {:?}",
                    c.wire_count(is_session),
                    c.gateway_anomalies()
                )
            })?
            .last_status
            .ok_or_else(|| anyhow!("no status"))?;
        // The status follows the flush on the one connection: what was sent has arrived.
        let sent: Vec<String> = c
            .view()
            .anomalies
            .iter()
            .filter(|a| {
                a.source == "gateway"
                    && a.kind == AnomalyKind::Ingest
                    && a.detail.starts_with("450")
            })
            .map(|a| a.detail.clone())
            .collect();
        if sent.len() != 10 {
            bail!(
                "{} of the {REFUSED} ingest anomalies queued out of session arrived (status: \
                 anomalies {}, anomaliesDropped {}): exactly 10 expected (DES-MSG-AN-2: at most \
                 10 per kind per 60 s window, the rest counted as dropped; the queue is sent \
                 once the session begins); {sent:?}",
                sent.len(),
                st.anomalies,
                st.anomalies_dropped
            );
        }
        c.note(format!(
            "10 anomalies arrived; status anomalies {}, anomaliesDropped {}",
            st.anomalies, st.anomalies_dropped
        ));
        Ok(())
    })
}

fn connect_refused_lasting(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        // Longer than the retryable back-off's first three waits at their shortest (3.5 s).
        const WATCH: Duration = Duration::from_secs(6);
        c.faults(FaultConfig {
            unauthorized_connects: 1,
            ..FaultConfig::default()
        })?;
        c.start_gateway().await?;
        let refusal = c
            .wait_wire("connect.result UNAUTHORIZED", WAIT, |e| {
                e.message_type == "connect.result" && e.code.as_deref() == Some("UNAUTHORIZED")
            })
            .await?;
        let at = c
            .wire()
            .iter()
            .position(|e| e.message_id == refusal.message_id)
            .unwrap_or_default();
        tokio::time::sleep(WATCH).await;
        let after: Vec<_> = c
            .wire()
            .into_iter()
            .skip(at + 1)
            .filter(|e| e.direction == "up")
            .map(|e| format!("{} {}", e.message_type, e.message_id))
            .collect();
        c.note(format!(
            "sent in the {} s after the refusal: {after:?}",
            WATCH.as_secs()
        ));
        if !after.is_empty() {
            bail!(
                "the gateway sent {after:?} within {} s of a lasting refusal (UNAUTHORIZED): the \
                 next connect comes 300 s later (DES-MSG-CONN-3)",
                WATCH.as_secs()
            );
        }
        Ok(())
    })
}

/// In a shared world, waits until the running gateway's session has lasted [`LONG_SESSION`]:
/// DES-MQTT-8's counts reset after a session of 60 s, so the connection cuts of earlier cases
/// do not lengthen the back-off that this case's cut starts. A gateway of the case's own has
/// had no failed connection.
async fn back_off_from_the_start(c: &mut Ctx) -> Result<()> {
    if !c.shared() {
        return Ok(());
    }
    let began = c
        .session_began()
        .ok_or_else(|| anyhow!("no session of the running gateway in the run's wire log"))?;
    let lasted = began.elapsed().as_secs_f64();
    if lasted < LONG_SESSION {
        c.note(format!(
            "the running gateway's session has lasted {lasted:.1} s: waiting until {LONG_SESSION} \
             s, so that its DES-MQTT-8 counts are reset"
        ));
        let until = began + Duration::from_secs_f64(LONG_SESSION);
        tokio::time::sleep_until(until.into()).await;
    }
    Ok(())
}

/// Connections the broker closes unanswered in BROKER-RESTART while it restarts.
const RESTART_REFUSALS: usize = 3;

fn broker_restart(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        back_off_from_the_start(c).await?;
        // The restart comes while a file's data message is unacknowledged: the platform has
        // it, its `data.ack` is withheld (and lost with the restart).
        c.faults(FaultConfig {
            withhold_acks: true,
            ..FaultConfig::default()
        })?;
        upload_billing(c, "billing_1.csv", 10, c.seed).await?;
        let ten = c.seq(10);
        c.wait_view("the file's data message at the platform", WAIT, |v| {
            v.highest_seq == ten
        })
        .await?;
        let transports_from = c.mqtt_connects_timed().len();
        let wire_from = c.wire().len();
        let cut = c.restart_broker(u32::try_from(RESTART_REFUSALS)?)?;
        c.faults(FaultConfig::default())?;
        // Storing does not depend on the platform (ST-STORE-1).
        upload_billing(c, "billing_2.csv", 10, c.seed + 1)
            .await
            .map_err(|e| anyhow!("upload while the broker restarts: {e}"))?;
        // d_1 + … + d_4 is at most 15 s.
        Ctx::poll(Duration::from_secs(40), || {
            Ok(match c.wire().iter().skip(wire_from).any(is_session) {
                true => Look::Done(()),
                false => Look::Not(format!(
                    "no session (connect.result OK) within 40 s of the broker's restart; MQTT \
                     connections since: {:?}",
                    c.mqtt_connects().get(transports_from..).unwrap_or_default()
                )),
            })
        })
        .await?;
        let gaps = transport_backoff(c, "", transports_from, Some(cut), RESTART_REFUSALS)?;
        c.note(format!(
            "s from the cut to each MQTT connection, then between them: {gaps:.3?} (d_1..d_{} \
             within [2^(n-2), 2^(n-1)) s)",
            gaps.len()
        ));
        // Reconnected (the session above): what was unacknowledged at the cut, and the file
        // stored meanwhile, are delivered.
        c.wait_all_acknowledged("all 20 records stored and acknowledged", 20)
            .await?;
        exactly_once(c, 20)
    })
}

/// How a round of CONNECT-BACKOFF (or CONNECT-BACKOFF-RESET) begins.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Begin {
    /// The gateway starts: [`BUSY_CONNECTS`] refusals, counted from 1.
    Start,
    /// Its MQTT connection is cut at the broker seconds into its session: one refusal, the
    /// fifth since the count last reset.
    CutShort,
    /// Its MQTT connection is cut at the broker once its session has lasted over 60 s: one
    /// refusal, the first since the count reset.
    CutLong,
}

/// Delivery and scheduling may add to a gateway's back-off, never take from it: the upper end
/// of d_n gets this much room (seconds), the lower end none.
const BACKOFF_ROOM: f64 = 2.0;

/// Over DES-MQTT-8's 60 s (seconds): the gateway's session begins when it reads the OK the
/// suite saw sent, a moment later.
const LONG_SESSION: f64 = 62.0;

/// Checks a wait of `gap` seconds against DES-MQTT-8's d_n: at least 2^(n-2) s, under
/// 2^(n-1) s plus [`BACKOFF_ROOM`]. `what` says what came how late (it ends "… came {gap} s
/// after …"), `counted` what n counts.
fn check_backoff(n: u32, gap: f64, what: &str, counted: &str) -> Result<()> {
    let top = f64::from(1u32 << (n - 1));
    if gap < top / 2.0 {
        bail!(
            "{what}: the back-off d_{n} is at least {} s (DES-MQTT-8; {counted})",
            top / 2.0
        );
    }
    if gap > top + BACKOFF_ROOM {
        bail!(
            "{what}: the back-off d_{n} is under {top} s (DES-MQTT-8; {BACKOFF_ROOM} s allowed \
             for delivery)"
        );
    }
    Ok(())
}

/// Checks the gateway's MQTT connections from `from` (an index into the broker front's
/// CONNECTs of its tenant): `dropped` closed unanswered by a restarting broker, then one
/// accepted, each after DES-MQTT-8's transport back-off (a) — with a `cut`, the first
/// connection d_1 after it and the next d_{n+1} after the n-th refused one; without, the
/// first refused one is the first failure. Returns the gaps, seconds; `label` begins what a
/// failure says.
fn transport_backoff(
    c: &Ctx,
    label: &str,
    from: usize,
    cut: Option<std::time::Instant>,
    dropped: usize,
) -> Result<Vec<f64>> {
    let all = c.mqtt_connects_timed();
    let attempts = all.get(from..).unwrap_or_default();
    let refused = attempts.iter().take_while(|(f, _)| f.refused).count();
    if refused != dropped || attempts.len() == refused {
        bail!(
            "{label}MQTT connections {:?}: {dropped} refused, then one accepted expected (the \
             suite's world)",
            attempts
                .iter()
                .map(|(f, _)| if f.refused { "refused" } else { "accepted" })
                .collect::<Vec<_>>()
        );
    }
    let mut times: Vec<std::time::Instant> = cut.into_iter().collect();
    times.extend(attempts.iter().take(refused + 1).map(|(_, at)| *at));
    // Numbered from 1: the connections after the cut, or those after the start.
    let first = usize::from(cut.is_none());
    let mut gaps = Vec::new();
    for (i, pair) in times.windows(2).enumerate() {
        let n = u32::try_from(i + 1)?;
        let gap = pair[1].saturating_duration_since(pair[0]).as_secs_f64();
        let after = match (i, cut) {
            (0, Some(_)) => "the cut".to_owned(),
            _ => format!("refused connection {}", i + first),
        };
        check_backoff(
            n,
            gap,
            &format!(
                "{label}MQTT connection {} came {gap:.3} s after {after}",
                i + 1 + first
            ),
            "(a) n counts the failed connections since a session that lasted 60 s",
        )?;
        gaps.push(gap);
    }
    Ok(gaps)
}

/// Starts the gateway (or cuts its connection) with the platform answering the next
/// `connect`s BUSY ([`Begin`]); checks every retry against DES-MQTT-8 and DES-MSG-CONN-3 and
/// returns the seconds from each refusal to the next `connect` (`round` names it in what is
/// noted).
async fn backoff_round(c: &mut Ctx, round: u32, begin: Begin, dropped: usize) -> Result<Vec<f64>> {
    let (refused, first_n) = match begin {
        Begin::Start => (BUSY_CONNECTS, 1),
        Begin::CutShort => (1, BUSY_CONNECTS + 1),
        Begin::CutLong => (1, 1),
    };
    if begin != Begin::Start {
        let began = c
            .wire_timed()
            .iter()
            .rev()
            .find(|(e, _)| is_session(e))
            .map(|(_, at)| *at)
            .ok_or_else(|| anyhow!("no session to cut"))?;
        if begin == Begin::CutLong {
            let until = began + Duration::from_secs_f64(LONG_SESSION);
            tokio::time::sleep_until(until.into()).await;
        }
        let lasted = began.elapsed().as_secs_f64();
        if begin == Begin::CutShort && lasted >= 50.0 {
            bail!("the session to cut has lasted {lasted:.0} s: under 60 s meant (the suite)");
        }
        c.note(format!(
            "round {round}: the session cut at the broker after {lasted:.1} s"
        ));
    }
    let from = c.wire().len();
    let transports_before = c.mqtt_connects().len();
    c.faults(FaultConfig {
        busy_connects: u32::try_from(refused)?,
        ..FaultConfig::default()
    })?;
    let cut = match begin {
        Begin::Start => {
            c.refuse_connections(u32::try_from(dropped)?);
            c.start_gateway().await?;
            None
        }
        Begin::CutShort | Begin::CutLong => Some(c.restart_broker(u32::try_from(dropped)?)?),
    };
    // Start: 0.5 + 1 + 2 + 4 s at least, 1 + 2 + 4 + 8 s at most; cut: at most 16 s; the
    // refused connections' back-off before: at most 1 + 2 + 4 s.
    let ok_at = Ctx::poll(Duration::from_secs(50), || {
        Ok(match c.wire().iter().skip(from).position(is_session) {
            Some(i) => Look::Done(from + i),
            None => Look::Not(format!(
                "round {round}: connect.result OK after the refusals not seen within 50 s"
            )),
        })
    })
    .await?;
    let wire = c.wire_timed();
    // From the round's first `connect` (what the session before sent is not in it).
    let first_connect = wire[from..ok_at]
        .iter()
        .position(|(e, _)| e.direction == "up" && e.message_type == "connect")
        .map_or(ok_at, |i| from + i);
    let before = &wire[first_connect..ok_at];
    if let Some((e, _)) = before
        .iter()
        .find(|(e, _)| e.direction == "up" && e.message_type != "connect")
    {
        bail!(
            "{} {} published before the session (DES-MSG-CONN-3: nothing but connect)",
            e.message_type,
            e.message_id
        );
    }
    let connects: Vec<_> = before
        .iter()
        .filter(|(e, _)| e.direction == "up" && e.message_type == "connect")
        .collect();
    let refusals: Vec<_> = before
        .iter()
        .filter(|(e, _)| e.message_type == "connect.result")
        .collect();
    if refusals.len() != refused
        || refusals
            .iter()
            .any(|(e, _)| e.code.as_deref() != Some("BUSY"))
    {
        bail!(
            "the platform answered {:?} before the OK: {refused} BUSY meant (the suite's world)",
            refusals
                .iter()
                .map(|(e, _)| e.code.clone())
                .collect::<Vec<_>>()
        );
    }
    if connects.len() != refused + 1 {
        bail!(
            "{} connect(s) before the OK answer: {} expected, one per refusal and the answered \
             one (DES-MSG-CONN-3: one outstanding at a time)",
            connects.len(),
            refused + 1
        );
    }
    let mut ids: Vec<&str> = connects
        .iter()
        .map(|(e, _)| e.message_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != connects.len() {
        bail!("a connect retry reused a messageId (DES-MSG-CONN-3: a new messageId)");
    }
    let mut gaps = Vec::new();
    for i in 1..=refused {
        let n = first_n + i - 1;
        let (refusal, refused_at) = refusals[i - 1];
        let (next, next_at) = connects[i];
        if refusal.in_reply_to.as_deref() != Some(connects[i - 1].0.message_id.as_str()) {
            bail!(
                "refusal {i} answers {:?}, not connect {} (the suite's world)",
                refusal.in_reply_to,
                connects[i - 1].0.message_id
            );
        }
        let gap = next_at.saturating_duration_since(*refused_at).as_secs_f64();
        check_backoff(
            u32::try_from(n)?,
            gap,
            &format!(
                "round {round}: connect {} came {gap:.3} s after refusal {n}",
                next.message_id
            ),
            "n counts the refusals since a session that lasted 60 s",
        )?;
        gaps.push(gap);
    }
    c.note(format!(
        "round {round}: s from each BUSY to the next connect: {gaps:.3?} (n = {first_n}..; d_n \
         within [2^(n-2), 2^(n-1)) s)"
    ));
    let transports = c.mqtt_connects().len() - transports_before;
    if transports != dropped + 1 {
        bail!(
            "{transports} MQTT connections in round {round}: {} expected ({dropped} closed by the \
             restarting broker, then one), a retryable refusal is retried on the same transport \
             (DES-MQTT-8 (b))",
            dropped + 1
        );
    }
    if dropped > 0 {
        let gaps = transport_backoff(
            c,
            &format!("round {round}: "),
            transports_before,
            cut,
            dropped,
        )?;
        c.note(format!(
            "round {round}: s between the MQTT connections{}: {gaps:.3?}",
            if cut.is_some() { " from the cut" } else { "" }
        ));
    }
    let first_after = Ctx::poll(WAIT, || {
        Ok(
            match c
                .wire()
                .into_iter()
                .skip(ok_at + 1)
                .find(|e| e.direction == "up")
            {
                Some(e) => Look::Done(e.message_type),
                None => Look::Not(format!(
                    "round {round}: nothing sent after the OK connect.result (DES-MSG-CONN-3: \
                     monitor.status)"
                )),
            },
        )
    })
    .await?;
    if first_after != "monitor.status" {
        bail!(
            "after the OK connect.result of round {round} the gateway first sent {first_after:?} \
             (DES-MSG-CONN-3: monitor.status)"
        );
    }
    Ok(gaps)
}

/// Every file under `dir` (recursively) whose name ends with `suffix`.
fn files_named(dir: &std::path::Path, suffix: &str, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_named(&p, suffix, out);
        } else if p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
        {
            out.push(p);
        }
    }
}

fn ftp_quarantine(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        use std::os::unix::fs::PermissionsExt;
        c.started(ProfileFormat::Json).await?;
        let target = c.ftp_target("billing")?;
        let user = target.user.clone();
        let good = legacy_sim::Table::generate(legacy_sim::Dataset::Billing, 3, c.seed)
            .to_csv(&legacy_sim::CsvOptions::default())
            .map_err(|e| anyhow!("{e}"))?;
        let bad = bad::content(
            BadKind::WrongColumnCount,
            &BadOptions {
                dataset: legacy_sim::Dataset::Billing,
                rows: 4,
                seed: c.seed,
                ..BadOptions::default()
            },
        )
        .bytes;
        for (name, bytes, want) in [("q_good.csv", &good, 226), ("q_bad.csv", &bad, 551)] {
            let code = upload_reply(&target, name, bytes).await?;
            if code != want {
                bail!("{name} answered {code}: {want} expected (DES-FTP-6)");
            }
        }
        c.command(OperatorCommand::Stop)?;
        c.wait_wire("periodic.stop.result OK", WAIT, |e| {
            e.message_type == "periodic.stop.result" && e.code.as_deref() == Some("OK")
        })
        .await?;
        let code = upload_reply(&target, "q_stopped.csv", &good).await?;
        if code != 450 {
            bail!("q_stopped.csv answered {code} with storing stopped: 450 expected");
        }
        let dir = c.cfg.gateway.state_dir.path().join("quarantine");
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        if mode(&dir) != 0o700 {
            bail!("{} has mode {:o}: 0700 expected", dir.display(), mode(&dir));
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| anyhow!("{}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".incoming")
            .collect();
        names.sort();
        c.note(format!("quarantine: {names:?}"));
        let stem_ok = |n: &str| {
            let (t, rest) = n.split_at(n.len().min(16));
            t.len() == 16
                && t.as_bytes()[8] == b'T'
                && t.ends_with('Z')
                && t[..8]
                    .bytes()
                    .chain(t[9..15].bytes())
                    .all(|b| b.is_ascii_digit())
                && rest.starts_with('_')
                && rest[1..] == format!("{user}_q_bad.csv")
        };
        let [file, reason] = names.as_slice() else {
            bail!("quarantine holds {names:?}: the refused file and its .reason expected");
        };
        if !stem_ok(file) || *reason != format!("{file}.reason") {
            bail!(
                "quarantine holds {names:?}: `{{yyyymmddThhmmssZ}}_{user}_q_bad.csv` and its \
                 `.reason` expected"
            );
        }
        let (file, reason) = (dir.join(file), dir.join(reason));
        if std::fs::read(&file)? != bad {
            bail!("{} is not the refused file byte for byte", file.display());
        }
        let why = std::fs::read_to_string(&reason)?;
        if !why.contains("551") || !why.contains("127.0.0.1") {
            bail!(
                "{} says {why:?}: the reply line and the client address expected",
                reason.display()
            );
        }
        for p in [&file, &reason] {
            if mode(p) != 0o600 {
                bail!("{} has mode {:o}: 0600 expected", p.display(), mode(p));
            }
        }
        // Neither the accepted file nor the 4xx one is kept (DES-FTP-7).
        for name in ["q_good.csv", "q_stopped.csv"] {
            let mut kept = Vec::new();
            files_named(&c.bundle.dir, name, &mut kept);
            if !kept.is_empty() {
                bail!("{name} is kept: {kept:?}");
            }
        }
        Ok(())
    })
}

/// Starts the gateway from `toml` and expects it refused: start fails or the process exits
/// within 10 s, and no `connect` reaches the platform. Returns what the start said.
async fn refused_at_start(c: &mut Ctx, what: &str, toml: &str) -> Result<String> {
    let path = c.bundle.dir.join("gateway.toml");
    std::fs::write(&path, toml)?;
    let since = c.wire().len();
    let said = match c.start_gateway().await {
        Err(e) => format!("start failed: {e}"),
        Ok(()) => {
            let until = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if !c.gateway_running().await {
                    break "the process exited".to_owned();
                }
                if tokio::time::Instant::now() >= until {
                    c.stop_gateway().await?;
                    bail!("started from {what} and still running after 10 s (DES-PROV-2)");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    if let Some(e) = c
        .wire()
        .into_iter()
        .skip(since)
        .find(|e| e.message_type == "connect")
    {
        bail!("started from {what}: it connected ({})", e.message_id);
    }
    c.stop_gateway().await?;
    Ok(said)
}

fn config_refused(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let path = c.bundle.dir.join("gateway.toml");
        let valid = std::fs::read_to_string(&path)?;
        let unknown_key = valid.replacen("[gateway]\n", "[gateway]\ncolour = \"blue\"\n", 1);
        let bad_name = valid.replacen("name = \"billing\"", "name = \"Billing\"", 1);
        if unknown_key == valid || bad_name == valid {
            bail!("the suite's gateway.toml has no `[gateway]` table or `billing` dataset");
        }
        let said = refused_at_start(c, "an unknown key", &unknown_key).await?;
        c.note(format!("unknown key: {said}"));
        let said = refused_at_start(c, "a dataset named `Billing`", &bad_name).await?;
        c.note(format!("dataset `Billing`: {said}"));
        std::fs::write(&path, &valid)?;
        c.session().await
    })
}

fn audit_trail(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        let start_id = c
            .wire()
            .into_iter()
            .find(|e| e.message_type == "periodic.start" && e.direction == "down")
            .map(|e| e.message_id)
            .ok_or_else(|| anyhow!("no periodic.start in the wire log"))?;
        // A failed login that only this case makes: a user and a password nobody else uses.
        let target = c.ftp_target("billing")?;
        let intruder = format!("intruder{}", c.seed % 100_000);
        let secret = format!("pw-{:016x}", rand::random::<u64>());
        let mut bad = target.clone();
        bad.user = intruder.clone();
        if let Ok(s) = Session::open_as(&bad, &secret).await {
            s.quit().await;
            bail!("the unknown user {intruder} logged in");
        }
        let name = format!("audit_{}.csv", c.seed);
        let table = upload_billing(c, &name, 3, c.seed).await?;
        c.wait_all_acknowledged("3 records acknowledged", 3).await?;
        c.stop_gateway().await?;
        c.start_gateway().await?;
        c.wait_view("session after the restart", WAIT, |v| v.connected)
            .await?;
        let Some(history) = c.access_history().await? else {
            bail!("this target's access history cannot be read");
        };
        c.note(format!(
            "{} lines of access history",
            history.lines().count()
        ));
        let missing: Vec<&str> = [
            ("the unknown user of the failed login", intruder.as_str()),
            ("the FTP user of the upload", target.user.as_str()),
            ("the upload's file name", name.as_str()),
            ("the client address", "127.0.0.1"),
            (
                "the messageId of the periodic.start received",
                start_id.as_str(),
            ),
        ]
        .into_iter()
        .filter(|(_, text)| !history.contains(text))
        .map(|(what, _)| what)
        .collect();
        if !missing.is_empty() {
            bail!(
                "the access history ({} lines, read after a restart) lacks {}: DES-AUDIT-1 asks \
                 for who, when and from where of every FTP login, failed login and upload and \
                 of every platform message received, kept across restarts",
                history.lines().count(),
                missing.join(", ")
            );
        }
        // What it must never hold: passwords, field values, key material.
        let key_file = c
            .cfg
            .masking
            .keys_dir
            .path()
            .join(format!("{}.key", c.cfg.masking.active_key.as_str()));
        let key = std::fs::read_to_string(&key_file)?.trim().to_owned();
        let mut secrets = vec![
            ("the refused login's password".to_owned(), secret.clone()),
            (
                "the FTP user's password".to_owned(),
                target.password.clone(),
            ),
            ("the masking key".to_owned(), key),
        ];
        let ds = gateway::protocol::ids::Dataset::new("billing").map_err(|e| anyhow!("{e}"))?;
        let columns = &c
            .cfg
            .dataset(&ds)
            .ok_or_else(|| anyhow!("billing"))?
            .columns;
        for row in &table.rows {
            for (col, value) in columns.iter().zip(row) {
                // Values of 4 characters or more: shorter ones may occur by chance.
                if col.masked && value.chars().count() >= 4 {
                    secrets.push((
                        format!("the plaintext of masked column {}", col.name),
                        value.clone(),
                    ));
                }
            }
        }
        if let Some((what, _)) = secrets
            .iter()
            .find(|(_, text)| history.contains(text.as_str()))
        {
            bail!(
                "the access history holds {what} (DES-AUDIT-1: never a field value, a password \
                 or key material)"
            );
        }
        c.note(format!("{} secrets looked for, none found", secrets.len()));
        Ok(())
    })
}

/// The keyId MASK-ROTATION rotates to.
const ROTATED_KEY_ID: &str = "rotated2";

fn mask_rotation(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        c.started(ProfileFormat::Json).await?;
        let first = upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        c.wait_all_acknowledged("3 records acknowledged", 3).await?;
        let old = c.cfg.masking.active_key.as_str().to_owned();
        let dir = c.cfg.masking.keys_dir.path().to_owned();
        let toml_path = c.bundle.dir.join("gateway.toml");
        let valid = std::fs::read_to_string(&toml_path)?;
        let rotated = valid.replacen(
            &format!("active_key = \"{old}\""),
            &format!("active_key = \"{ROTATED_KEY_ID}\""),
            1,
        );
        if rotated == valid {
            bail!("the suite's gateway.toml has no `active_key = \"{old}\"`");
        }
        c.stop_gateway().await?;
        let said = refused_at_start(c, "an `active_key` with no key file", &rotated).await?;
        c.note(format!("active_key without its file: {said}"));
        let key_path = dir.join(format!("{ROTATED_KEY_ID}.key"));
        let key: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let write_key = |text: &str, mode: u32| -> Result<()> {
            let _ = std::fs::remove_file(&key_path);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&key_path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))?;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(mode))?;
            Ok(())
        };
        write_key(&format!("{key}\n"), 0o640)?;
        let said = refused_at_start(c, "a masking key file of mode 0640", &rotated).await?;
        c.note(format!("key file 0640: {said}"));
        write_key(&format!("{}\n", &key[1..]), 0o600)?;
        let said = refused_at_start(c, "a masking key file of 63 hex digits", &rotated).await?;
        c.note(format!("key file of 63 hex digits: {said}"));
        write_key(&format!("{key}\n"), 0o600)?;
        std::fs::write(&toml_path, &rotated)?;
        c.start_gateway().await?;
        c.wait_view("session after the rotation", WAIT, |v| v.connected)
            .await?;
        let second = upload_billing(c, "billing_2.csv", 3, c.seed + 1).await?;
        let stored = stored_at_least(c, 6).await?;
        let ds = gateway::protocol::ids::Dataset::new("billing").map_err(|e| anyhow!("{e}"))?;
        let columns = &c
            .cfg
            .dataset(&ds)
            .ok_or_else(|| anyhow!("billing"))?
            .columns;
        if !columns.iter().any(|c| c.masked) {
            bail!("the suite's billing dataset masks no column: nothing proved");
        }
        // The utility's keys as the gateway now holds them: the new one active, the old one
        // kept for unmasking (DES-MASK-3).
        let keys = gateway::security::MaskingKeys::load_dir(&dir, ROTATED_KEY_ID)?;
        for (i, r) in stored.iter().enumerate() {
            let (row, key_id) = match i {
                0..3 => (&first.rows[i], old.as_str()),
                3..6 => (&second.rows[i - 3], ROTATED_KEY_ID),
                _ => bail!("{} records stored, 6 uploaded", stored.len()),
            };
            if r.seq != c.seq(i as u64 + 1) {
                bail!("record {i} has seq {}", r.seq);
            }
            let prefix = format!("m1.{key_id}.");
            for (j, col) in columns.iter().enumerate() {
                if col.masked && !r.fields.get(j).is_some_and(|f| f.starts_with(&prefix)) {
                    bail!(
                        "seq {} column {}: {:?}, masked with keyId {key_id} expected ({} \
                         the rotation to {ROTATED_KEY_ID}; DES-MASK-1/3)",
                        r.seq,
                        col.name,
                        r.fields.get(j),
                        if i < 3 {
                            "uploaded before"
                        } else {
                            "uploaded after"
                        }
                    );
                }
            }
            record_as_uploaded(r, row, columns, &keys)?;
        }
        Ok(())
    })
}

fn forged_case(c: &mut Ctx) -> CaseFuture<'_> {
    Box::pin(async move {
        match Fault::of_case(&c.case_id) {
            Some(f) => forged(c, f).await,
            None => Err(crate::case::Failure {
                observed: format!("no forged-command fault for case {}", c.case_id),
            }),
        }
    })
}

async fn forged(c: &mut Ctx, fault: Fault) -> crate::case::CaseResult {
    wait_ok(
        async {
            c.session().await?;
            // The genuine platform certificate held first: a fault armed while the gateway's
            // start-up fetch (DES-CERT-3) is under way would hand it the faulty signer's
            // certificate as `platform.pem` against its older CRL. (A running gateway's
            // start-up is long past.)
            if !c.shared() {
                Ctx::poll(WAIT, || {
                    Ok(match c.platform_pem_fetches() {
                        0 => Look::Not(
                            "platform.pem not fetched at start (DES-CERT-3): the forged command \
                             needs the genuine certificate held first"
                                .to_owned(),
                        ),
                        _ => Look::Done(()),
                    })
                })
                .await?;
            }
            let fetched = c.platform_pem_fetches();
            // The anomalies this command causes are the ones after these.
            let before = c.gateway_anomalies().len();
            c.faults(fault.config())?;
            c.command(OperatorCommand::Start {
                datasets: vec![],
                interval_sec: 1,
                format: ProfileFormat::Json,
            })?;
            let forged = c
                .wait_wire("the forged start", WAIT, |e| {
                    e.message_type == "periodic.start" && e.fault.is_some()
                })
                .await?;
            c.note(format!("sent {} ({:?})", forged.message_id, forged.fault));
            if fault.offers_cert() {
                c.wait_gateway_anomaly_after(
                    "an anomaly of kind certificate (the offered platform.pem refused)",
                    before,
                    AnomalyKind::Certificate,
                    |_| true,
                )
                .await?;
                let n = c.platform_pem_fetches() - fetched;
                c.note(format!(
                    "platform.pem fetched {n} time(s) after the forged command"
                ));
                if n == 0 {
                    bail!("platform.pem not fetched at the unknown kid (DES-SEAL-6)");
                }
            }
            c.wait_gateway_anomaly_after(
                "an anomaly of kind security",
                before,
                AnomalyKind::Security,
                |_| true,
            )
            .await?;
            // The platform retries the command, now correctly sealed: that one is applied.
            c.wait_wire("periodic.start.result OK for a correct start", WAIT, |e| {
                e.message_type == "periodic.start.result" && e.code.as_deref() == Some("OK")
            })
            .await?;
            // No answer to the forged transmission: nothing answers its messageId, or only
            // after a correct retransmission of it.
            let wire = c.wire();
            let id = forged.message_id.as_str();
            let forged_at = wire
                .iter()
                .position(|e| e.message_id == id && e.fault.is_some());
            let retry_at = wire
                .iter()
                .position(|e| e.message_id == id && e.direction == "down" && e.fault.is_none());
            let reply_at = wire
                .iter()
                .position(|e| e.in_reply_to.as_deref() == Some(id));
            match (forged_at, retry_at, reply_at) {
                (Some(_), None, None) => Ok(()),
                (Some(f), Some(r), Some(a)) if f < r && r < a => Ok(()),
                (_, None, Some(_)) => bail!("the forged command was answered"),
                other => bail!("forged/retry/reply positions {other:?}"),
            }
        }
        .await,
    )
}

// ------------------------------------------------------------------ south interface

/// The reply codes DES-FTP-6 prescribes for each legacy-sim bad-input kind, in send order.
fn bad_codes(
    kind: BadKind,
) -> Option<(
    &'static [u32],
    &'static [&'static str],
    &'static [&'static str],
)> {
    Some(match kind {
        BadKind::UnterminatedQuote => (
            &[551],
            &["SC-ACQ-1", "SC-FTP-1"],
            &["DES-CSV-1", "DES-FTP-6"],
        ),
        BadKind::WrongColumnCount => (
            &[551],
            &["SC-ACQ-1", "SC-FTP-1"],
            &["DES-CSV-4", "DES-FTP-6"],
        ),
        BadKind::WrongHeader => (
            &[551],
            &["SC-ACQ-1", "SC-FTP-1"],
            &["DES-CSV-3", "DES-FTP-6"],
        ),
        BadKind::Cp932AsUtf8 => (
            &[551],
            &["SC-ACQ-1", "SC-FTP-1"],
            &["DES-CSV-2", "DES-FTP-6"],
        ),
        BadKind::InvalidUtf8 => (
            &[551],
            &["SC-ACQ-1", "SC-FTP-1"],
            &["DES-CSV-2", "DES-FTP-6"],
        ),
        BadKind::Truncated => (&[426], &["SC-FTP-1", "SM-RESEND"], &["DES-FTP-6"]),
        BadKind::Oversized => (&[552], &["SC-FTP-1", "SM-THRESHOLD"], &["DES-FTP-6"]),
        BadKind::Empty => (&[551], &["SC-FTP-1"], &["DES-CSV-1", "DES-FTP-6"]),
        BadKind::Duplicate => (&[226, 226], &["SC-FTP-1", "ST-STORE-1"], &["DES-FTP-5"]),
        BadKind::PathTraversal => (
            &[553, 553, 553, 553],
            &["SM-ACL", "SC-FTP-1"],
            &["DES-FTP-5"],
        ),
        BadKind::WrongPassword => (
            &[530, 530, 530, 530, 530, 530],
            &["SM-LOCKOUT", "SM-SESSION", "SM-AUDIT"],
            &["DES-FTP-3"],
        ),
        BadKind::LongRecord => (
            &[552],
            &["SC-ACQ-1", "SC-FTP-1"],
            &["DES-MSG-DATA-6", "DES-FTP-6"],
        ),
        _ => return None,
    })
}

fn bad_case(kind: BadKind) -> Option<Case> {
    let (_, reqs, rules) = bad_codes(kind)?;
    let id: &'static str =
        Box::leak(format!("FTP-{}", kind.name().to_uppercase()).into_boxed_str());
    let run: for<'a> fn(&'a mut Ctx) -> CaseFuture<'a> = match kind {
        BadKind::UnterminatedQuote => |c| Box::pin(bad_input(c, BadKind::UnterminatedQuote)),
        BadKind::WrongColumnCount => |c| Box::pin(bad_input(c, BadKind::WrongColumnCount)),
        BadKind::WrongHeader => |c| Box::pin(bad_input(c, BadKind::WrongHeader)),
        BadKind::Cp932AsUtf8 => |c| Box::pin(bad_input(c, BadKind::Cp932AsUtf8)),
        BadKind::InvalidUtf8 => |c| Box::pin(bad_input(c, BadKind::InvalidUtf8)),
        BadKind::Truncated => |c| Box::pin(bad_input(c, BadKind::Truncated)),
        BadKind::Oversized => |c| Box::pin(bad_input(c, BadKind::Oversized)),
        BadKind::Empty => |c| Box::pin(bad_input(c, BadKind::Empty)),
        BadKind::Duplicate => |c| Box::pin(bad_input(c, BadKind::Duplicate)),
        BadKind::PathTraversal => |c| Box::pin(bad_input(c, BadKind::PathTraversal)),
        BadKind::WrongPassword => |c| Box::pin(bad_input(c, BadKind::WrongPassword)),
        BadKind::LongRecord => |c| Box::pin(bad_input(c, BadKind::LongRecord)),
        _ => return None,
    };
    Some(Case {
        id,
        requirements: reqs,
        rules,
        level: if kind == BadKind::WrongPassword {
            Level::Should
        } else {
            Level::Must
        },
        negative: kind != BadKind::Duplicate,
        description: kind.expectation(),
        expectation: "the reply codes of DES-FTP-6 for this input; nothing of a refused file \
                      stored or sent",
        // The lockout outlasts the case.
        needs: if kind == BadKind::WrongPassword {
            Needs::OWN
        } else {
            Needs::NONE
        },
        run,
    })
}

async fn bad_input(c: &mut Ctx, kind: BadKind) -> crate::case::CaseResult {
    wait_ok(
        async {
            c.started(ProfileFormat::Json).await?;
            let (want, _, _) = bad_codes(kind).ok_or_else(|| anyhow!("no expectation"))?;
            let opts = BadOptions {
                dataset: legacy_sim::Dataset::Billing,
                rows: 20,
                seed: c.seed,
                size: c.cfg.ftp.max_file_bytes.min(8 << 20) + 1024,
                times: 5,
                name_prefix: "bad".into(),
            };
            let policy = RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            };
            let target = c.ftp_target("billing")?;
            let mut entries = bad::run(kind, &target, &opts, &policy).await;
            // A send that got no reply at all (the connection failed before one) says nothing
            // of the gateway's rules: the kind is sent again once, and the report says so.
            // (Not for the kinds whose sessions change the gateway's state: duplicates,
            // lockout.) A gateway that drops connections fails the second time too.
            let replied =
                |es: &[legacy_sim::ManifestEntry]| es.iter().all(|e| e.reply_code.is_some());
            if !replied(&entries) && !matches!(kind, BadKind::Duplicate | BadKind::WrongPassword) {
                c.note(format!(
                    "no reply on the first attempt ({:?}); sent again",
                    entries.iter().map(|e| &e.reply_text).collect::<Vec<_>>()
                ));
                entries = bad::run(kind, &target, &opts, &policy).await;
            }
            let codes: Vec<u32> = entries.iter().map(|e| e.reply_code.unwrap_or(0)).collect();
            let texts: Vec<String> = entries
                .iter()
                .map(|e| match (e.reply_code, e.attempt_log.last()) {
                    // No reply: where the exchange broke (AUTH TLS, STOR, …) says whose it was.
                    (None, Some(a)) => format!(
                        "None at {}: {}",
                        a.stage,
                        e.reply_text.as_deref().unwrap_or("")
                    ),
                    _ => format!(
                        "{:?} {}",
                        e.reply_code,
                        e.reply_text.as_deref().unwrap_or("")
                    ),
                })
                .collect();
            c.note(format!("replies: {texts:?}"));
            if codes != want {
                bail!("reply codes {codes:?}, expected {want:?}: {texts:?}");
            }
            // Every refusal is reported (DES-FTP-6, DES-MSG-AN-1): an `ingest` anomaly.
            // Its detail is the DES-FTP-6 text (code and rule first), or for the lockout the
            // SM-LOCKOUT anomaly of DES-FTP-3.
            if let Some(code) = codes.iter().find(|c| **c != 226) {
                let (_, _, rules) = bad_codes(kind).ok_or_else(|| anyhow!("no expectation"))?;
                match kind {
                    BadKind::WrongPassword => {
                        c.wait_gateway_anomaly(
                            "an ingest anomaly with rule SM-LOCKOUT",
                            AnomalyKind::Ingest,
                            |a| a.rule == "SM-LOCKOUT",
                        )
                        .await?;
                    }
                    BadKind::LongRecord => {
                        // DES-FTP-6: the pattern's text (the line where the long record
                        // begins: the first data line, after the header), rule SC-ACQ-1.
                        const TEXT: &str = "552 DES-MSG-DATA-6: line 2: record over 65536 bytes";
                        c.wait_gateway_anomaly(
                            &format!("an ingest anomaly, rule SC-ACQ-1, detail `{TEXT}`"),
                            AnomalyKind::Ingest,
                            |a| a.rule == "SC-ACQ-1" && a.detail == TEXT,
                        )
                        .await?;
                    }
                    _ => {
                        let head = format!("{code} {}", rules[0]);
                        c.wait_gateway_anomaly(
                            &format!("an ingest anomaly whose detail begins `{head}`"),
                            AnomalyKind::Ingest,
                            |a| a.detail.starts_with(&head),
                        )
                        .await?;
                    }
                }
            }
            // Nothing of a refused file stored: only the duplicate's two copies count.
            let accepted = codes.iter().filter(|c| **c == 226).count() as u64;
            let records = accepted * 20;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let v = c.view();
            if v.highest_seq != c.seq(records) {
                bail!(
                    "the platform holds seqs up to {}, {} expected",
                    v.highest_seq,
                    c.seq(records)
                );
            }
            Ok(())
        }
        .await,
    )
}

// ------------------------------------------------------------------ evacuation (ST-EVAC-1)

/// `retention_days` 0 and one evacuation pass a second (DES-PROV-2, DES-EVAC-1).
fn evacuate_at_once(c: &mut Ctx) -> Result<()> {
    c.reconfigure(|cfg| {
        cfg.storage.retention_days = 0;
        cfg.storage.evacuation_interval_sec = gateway::config::Secs(1);
    })
}

/// One archive of `evacuation_dir` as the suite reads it (DES-EVAC-2..4).
struct ArchiveSeen {
    /// Its `index.jsonl` line.
    index: serde_json::Value,
    /// The `.sgwa` file.
    path: std::path::PathBuf,
    /// `records.jsonl`, verified and decrypted.
    payload: Vec<u8>,
}

/// The gateway's data-protection key, certificate and kid (from the bundle the suite made).
fn own_keys(
    c: &Ctx,
) -> Result<(
    openssl::pkey::PKey<openssl::pkey::Private>,
    openssl::x509::X509,
    String,
)> {
    let key = openssl::pkey::PKey::private_key_from_pem(&std::fs::read(
        c.cfg.data_protection.key.path(),
    )?)?;
    let cert = openssl::x509::X509::from_pem(&std::fs::read(c.cfg.data_protection.cert.path())?)?;
    let kid = gateway::security::cert::kid_of(&cert).map_err(|e| anyhow!("{e}"))?;
    Ok((key, cert, kid))
}

/// Reads every archive of the index: name, SHA-256, decryption with the gateway's own key,
/// signature with its own certificate, header (DES-EVAC-2..4); any deviation is the failure.
fn read_archives(c: &Ctx) -> Result<Vec<ArchiveSeen>> {
    use gateway::security::file::{ZipLimits, decrypt_file, verify_file};
    use sha2::Digest;
    let dir = c.cfg.storage.evacuation_dir.path();
    let index = std::fs::read_to_string(dir.join("index.jsonl"))
        .map_err(|e| anyhow!("{}/index.jsonl: {e}", dir.display()))?;
    let (key, cert, kid) = own_keys(c)?;
    let mut out = Vec::new();
    for line in index.lines() {
        let l: serde_json::Value =
            serde_json::from_str(line).map_err(|e| anyhow!("index line {line}: {e}"))?;
        let (file, dataset, epoch) = (
            l["file"].as_str().unwrap_or_default(),
            l["dataset"].as_str().unwrap_or_default(),
            l["epoch"].as_str().unwrap_or_default(),
        );
        let (first, last) = (
            l["range"]["first"].as_u64().unwrap_or_default(),
            l["range"]["last"].as_u64().unwrap_or_default(),
        );
        let want = format!("{}_{dataset}_{epoch}_{first:020}-{last:020}.sgwa", c.gw);
        if file != want {
            bail!("archive named {file:?}, DES-EVAC-2 says {want:?}");
        }
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| anyhow!("{file}: {e}"))?;
        let digest = hex::encode(sha2::Sha256::digest(&bytes));
        if l["sha256"].as_str() != Some(digest.as_str()) {
            bail!(
                "{file}: SHA-256 {digest} is not the index's {}",
                l["sha256"]
            );
        }
        let limits = ZipLimits::default();
        let mut signed = Vec::new();
        decrypt_file(
            &key,
            &kid,
            std::io::Cursor::new(&bytes),
            &mut signed,
            &limits,
        )
        .map_err(|e| anyhow!("{file}: not an encrypted ZIP to the gateway's own key: {e}"))?;
        let mut payload = Vec::new();
        let opened = verify_file(
            &*cert.public_key()?,
            &kid,
            std::io::Cursor::new(&signed),
            &mut payload,
            &limits,
        )
        .map_err(|e| anyhow!("{file}: not signed with the gateway's own key: {e}"))?;
        if opened.name != "records.jsonl" {
            bail!("{file}: signed payload named {:?}", opened.name);
        }
        let text = std::str::from_utf8(&payload).map_err(|_| anyhow!("{file}: not UTF-8"))?;
        let mut lines = text.split_terminator('\n');
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap_or_default())
            .map_err(|e| anyhow!("{file}: header: {e}"))?;
        if header["format"] != "sgw-archive-v1"
            || header["gatewayId"] != c.gw.as_str()
            || header["dataset"] != dataset
            || header["range"] != l["range"]
            || header["records"] != l["records"]
        {
            bail!("{file}: header {header} does not match the index line {l}");
        }
        let n = lines.count() as u64;
        if n != last + 1 - first {
            bail!("{file}: {n} record lines for {first}..={last}");
        }
        out.push(ArchiveSeen {
            index: l,
            path,
            payload,
        });
    }
    Ok(out)
}

/// (seq, fields) of an archive's record lines.
fn archived_records(a: &ArchiveSeen) -> Result<Vec<(u64, Vec<String>)>> {
    let text = std::str::from_utf8(&a.payload)?;
    text.split_terminator('\n')
        .skip(1)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            let seq = v["seq"]
                .as_u64()
                .ok_or_else(|| anyhow!("record line {l}"))?;
            let fields: Vec<String> = serde_json::from_value(v["fields"].clone())?;
            Ok((seq, fields))
        })
        .collect()
}

/// Starts sending, uploads `rows` billing rows and waits until all are evacuated.
async fn evacuated(c: &mut Ctx, rows: u64) -> Result<Vec<ArchiveSeen>> {
    evacuate_at_once(c)?;
    c.started(ProfileFormat::Json).await?;
    upload_billing(c, "billing_1.csv", rows as usize, c.seed).await?;
    c.wait_view("records at the platform", WAIT, |v| v.highest_seq == rows)
        .await?;
    c.wait_view("monitor.status counting them evacuated", WAIT, |v| {
        v.last_status
            .as_ref()
            .is_some_and(|s| s.storage.evacuated >= rows && s.storage.records == 0)
    })
    .await
    .map_err(|e| anyhow!("{e}; last status {:?}", c.view().last_status))?;
    let archives = read_archives(c)?;
    let seen: u64 = archives
        .iter()
        .map(|a| a.index["records"].as_u64().unwrap_or_default())
        .sum();
    if seen != rows {
        bail!("the index lists {seen} archived records, {rows} were evacuated");
    }
    c.note(format!(
        "{} archive(s): {:?}",
        archives.len(),
        archives
            .iter()
            .map(|a| &a.index["file"])
            .collect::<Vec<_>>()
    ));
    Ok(archives)
}

/// Every record of `archives` is at the platform, as the platform received it (masked values
/// stay masked in both, DES-EVAC-3). How many records the archives hold.
fn archived_as_received(c: &Ctx, archives: &[ArchiveSeen]) -> Result<u64> {
    let stored = c.stored()?;
    let mut archived = 0;
    for a in archives {
        for (seq, fields) in archived_records(a)? {
            archived += 1;
            let Some(r) = stored.iter().find(|r| r.seq == seq) else {
                bail!("archived seq {seq} never reached the platform");
            };
            if r.fields != fields {
                bail!("archived seq {seq} differs from what the platform received");
            }
        }
    }
    Ok(archived)
}

fn evac_archive(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let archives = evacuated(c, 6).await?;
        archived_as_received(c, &archives)?;
        let range = SeqRange::new(1, 6).ok_or_else(|| anyhow!("range"))?;
        c.command(OperatorCommand::Resend {
            dataset: None,
            seq: Some(range),
            time: None,
        })?;
        let r = c
            .wait_wire("resend.result", WAIT, |e| e.message_type == "resend.result")
            .await?;
        if r.code.as_deref() != Some("OK")
            || !r.summary.contains("\"records\":6")
            || !r.summary.contains("\"archived\":6")
        {
            bail!("resend.result {:?} {}", r.code, r.summary);
        }
        c.wait_wire("resend data of the archived records", WAIT, |e| {
            e.message_type == "data" && e.summary.contains(" resend ")
        })
        .await?;
        Ok(())
    })
}

fn crash_evacuation(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        const ROWS: u64 = 6;
        evacuate_at_once(c)?;
        c.started(ProfileFormat::Json).await?;
        let aimed = c
            .crash_gateway_at(CrashPoint::AfterEvacuationCommit)
            .await?;
        upload_billing(c, "billing_1.csv", ROWS as usize, c.seed).await?;
        c.wait_view("records at the platform", WAIT, |v| v.highest_seq == ROWS)
            .await?;
        if aimed {
            c.wait_gateway_crashed(WAIT, "its records acknowledged and old enough to evacuate")
                .await?;
            c.note("died right after the archive's store transaction (the target's crash point)");
        } else {
            let dir = c.cfg.storage.evacuation_dir.path().to_owned();
            Ctx::poll(WAIT, || {
                let index = std::fs::read_to_string(dir.join("index.jsonl")).unwrap_or_default();
                Ok(if index.ends_with('\n') {
                    Look::Done(())
                } else {
                    Look::Not("an archive's index line (DES-EVAC-4 step 2)".into())
                })
            })
            .await?;
            if !c.kill_gateway().await? {
                bail!("the target cannot be killed");
            }
            c.note("killed the moment an archive's index line appeared");
        }
        let restarted_at = c.wire().len();
        c.start_gateway().await?;
        c.wait_view(
            "a monitor.status after the restart counting the 6 records evacuated",
            WAIT,
            |v| {
                v.last_status
                    .as_ref()
                    .is_some_and(|s| s.storage.evacuated >= ROWS && s.storage.records == 0)
            },
        )
        .await
        .map_err(|e| anyhow!("{e}; last status {:?}", c.view().last_status))?;
        let archived = archived_as_received(c, &read_archives(c)?)?;
        if archived != ROWS {
            bail!("{archived} records in the archives, {ROWS} evacuated");
        }
        let again: Vec<String> = c.wire()[restarted_at..]
            .iter()
            .filter(|e| e.message_type == "data" && !e.summary.contains(" resend "))
            .map(|e| e.summary.clone())
            .collect();
        if !again.is_empty() {
            bail!("data sent again unasked after the restart: {again:?}");
        }
        let id = c.sent(OperatorCommand::Resend {
            dataset: None,
            seq: SeqRange::new(1, ROWS),
            time: None,
        })?;
        let r = c
            .wait_wire("resend.result", WAIT, |e| {
                e.message_type == "resend.result" && e.in_reply_to.as_deref() == Some(id.as_str())
            })
            .await?;
        if r.code.as_deref() != Some("OK")
            || !r.summary.contains(&format!("\"records\":{ROWS}"))
            || !r.summary.contains(&format!("\"archived\":{ROWS}"))
        {
            bail!(
                "resend.result {:?} {} to 1..={ROWS}: OK with records {ROWS}, archived {ROWS} \
                 expected (DES-EVAC-5: archived records stay in the record index)",
                r.code,
                r.summary
            );
        }
        c.wait_wire("resend data of the archived records", WAIT, |e| {
            e.message_type == "data"
                && e.summary.contains(" resend ")
                && data_range(&e.summary).is_some_and(|r| *r.start() == 1)
        })
        .await?;
        Ok(())
    })
}

fn evac_archive_forged(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        use gateway::security::file::{AesCbc, encrypt_file, sign_file};
        let archives = evacuated(c, 6).await?;
        let (_, cert, kid) = own_keys(c)?;
        let a = &archives[0];
        let text = String::from_utf8(a.payload.clone())?;
        let mut lines: Vec<String> = text.split_terminator('\n').map(str::to_owned).collect();
        let mut rec: serde_json::Value = serde_json::from_str(&lines[1])?;
        rec["fields"][0] = serde_json::Value::String("FORGED".into());
        lines[1] = rec.to_string();
        let forged_payload = lines.join("\n") + "\n";
        let other = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048)?)?;
        let signed = sign_file(
            &other,
            &kid,
            "records.jsonl",
            forged_payload.as_bytes(),
            std::io::Cursor::new(Vec::new()),
        )
        .map_err(|e| anyhow!("{e}"))?
        .into_inner();
        let sealed = encrypt_file(
            &*cert.public_key()?,
            &kid,
            AesCbc::Aes128,
            "records.sig.zip",
            signed.as_slice(),
            std::io::Cursor::new(Vec::new()),
        )
        .map_err(|e| anyhow!("{e}"))?
        .into_inner();
        std::fs::write(&a.path, sealed)?;
        let first = a.index["range"]["first"].as_u64().unwrap_or(1);
        let last = a.index["range"]["last"].as_u64().unwrap_or(1);
        c.note(format!("replaced {} ({first}..={last})", a.index["file"]));
        c.command(OperatorCommand::Resend {
            dataset: None,
            seq: SeqRange::new(first, last),
            time: None,
        })?;
        let r = c
            .wait_wire("resend.result", WAIT, |e| e.message_type == "resend.result")
            .await?;
        if r.code.as_deref() != Some("NOT_FOUND") {
            bail!(
                "resend.result {:?} {} (NOT_FOUND expected: the archive is not the gateway's)",
                r.code,
                r.summary
            );
        }
        c.wait_gateway_anomaly(
            "an anomaly of kind storage, rule DES-EVAC-5",
            AnomalyKind::Storage,
            |a| a.rule == "DES-EVAC-5",
        )
        .await?;
        if c.stored()?
            .iter()
            .any(|r| r.fields.iter().any(|f| f == "FORGED"))
        {
            bail!("the forged field reached the platform");
        }
        if c.wire()
            .iter()
            .any(|e| e.message_type == "data" && e.summary.contains(" resend "))
        {
            bail!("resend data sent from the forged archive");
        }
        // Its records no longer held, a range over them and over records still held is
        // PARTIAL, and only the held ones are sent (DES-EVAC-5, DES-MSG-RS-2).
        upload_billing(c, "billing_2.csv", 2, c.seed + 1).await?;
        c.wait_view("records 7 and 8 at the platform", WAIT, |v| {
            v.highest_seq == 8
        })
        .await?;
        let from = c.wire().len();
        let id = c.sent(OperatorCommand::Resend {
            dataset: None,
            seq: SeqRange::new(first, 8),
            time: None,
        })?;
        let r = c
            .wait_wire(
                "resend.result over the lost archive and beyond",
                WAIT,
                |e| {
                    e.message_type == "resend.result"
                        && e.in_reply_to.as_deref() == Some(id.as_str())
                },
            )
            .await?;
        let held = 8 - last;
        if r.code.as_deref() != Some("PARTIAL")
            || !r.summary.contains(&format!("\"records\":{held}"))
        {
            bail!(
                "resend.result {:?} {} to {first}..=8 ({first}..={last} in the refused archive): \
                 PARTIAL with {held} records expected (DES-EVAC-5, DES-MSG-RS-2)",
                r.code,
                r.summary
            );
        }
        Ctx::poll(WAIT, || {
            let mut seqs: Vec<u64> = c
                .wire()
                .into_iter()
                .skip(from)
                .filter(|e| e.message_type == "data" && e.summary.contains(" resend "))
                .filter_map(|e| data_range(&e.summary))
                .flatten()
                .collect();
            seqs.sort_unstable();
            Ok(match seqs == (last + 1..=8).collect::<Vec<u64>>() {
                true => Look::Done(()),
                false => Look::Not(format!(
                    "resend data {seqs:?} for {first}..=8, exactly {}..=8 expected",
                    last + 1
                )),
            })
        })
        .await?;
        Ok(())
    })
}

fn evac_unacked(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        evacuate_at_once(c)?;
        c.started(ProfileFormat::Json).await?;
        c.faults(FaultConfig {
            withhold_acks: true,
            ..FaultConfig::default()
        })?;
        upload_billing(c, "billing_1.csv", 5, c.seed).await?;
        // From the upload on, several evacuation passes (one a second) and monitoring intervals go by.
        let dir = c.cfg.storage.evacuation_dir.path().to_owned();
        let archives = |dir: &std::path::Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".sgwa"))
                        .collect()
                })
                .unwrap_or_default()
        };
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < until {
            let found = archives(&dir);
            if !found.is_empty() {
                bail!("unacknowledged records evacuated: {found:?}");
            }
            if let Some(s) = &c.view().last_status
                && s.storage.evacuated > 0
            {
                bail!("monitor.status counts {} evacuated", s.storage.evacuated);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        c.faults(FaultConfig::default())?;
        c.wait_view("the 5 records evacuated once acknowledged", WAIT, |v| {
            v.last_status
                .as_ref()
                .is_some_and(|s| s.storage.evacuated >= 5)
        })
        .await
        .map_err(|e| anyhow!("{e}; last status {:?}", c.view().last_status))?;
        Ok(())
    })
}

// ------------------------------------------------------------------ freshness and replay

fn pstart_stale(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.start_gateway().await?;
        c.wait_view("session", WAIT, |v| v.connected).await?;
        c.faults(FaultConfig {
            stale_commands: 1,
            ..FaultConfig::default()
        })?;
        c.command(OperatorCommand::Start {
            datasets: vec![],
            interval_sec: 1,
            format: ProfileFormat::Json,
        })?;
        let r = c
            .wait_wire("periodic.start.result", WAIT, |e| {
                e.message_type == "periodic.start.result"
            })
            .await?;
        if r.code.as_deref() != Some("STALE") {
            bail!(
                "periodic.start.result {:?} {} (STALE expected)",
                r.code,
                r.summary
            );
        }
        c.wait_gateway_anomaly("an anomaly of kind stale", AnomalyKind::Stale, |_| true)
            .await?;
        match upload_billing(c, "after_stale.csv", 3, c.seed).await {
            Ok(_) => bail!("an upload after a stale start was accepted"),
            Err(e) if e.to_string().contains("replied 450") => Ok(()),
            Err(e) => bail!("upload after a stale start: {e} (450 expected)"),
        }
    })
}

fn pstart_replayed(c: &mut Ctx) -> CaseFuture<'_> {
    Box::pin(async move { wait_ok(replayed_start(c, false).await) })
}

fn pstart_replayed_after_restart(c: &mut Ctx) -> CaseFuture<'_> {
    Box::pin(async move { wait_ok(replayed_start(c, true).await) })
}

/// PSTART-REPLAYED, and with `restart` the gateway restarted between the start and the stop
/// (its reply memory must come back with its state, DES-ENV-8).
async fn replayed_start(c: &mut Ctx, restart: bool) -> Result<()> {
    c.started(ProfileFormat::Json).await?;
    let first = c
        .wait_wire("the start's periodic.start.result OK", WAIT, |e| {
            e.message_type == "periodic.start.result" && e.code.as_deref() == Some("OK")
        })
        .await?;
    if restart {
        c.stop_gateway().await?;
        let sessions = c.wire_count(is_session);
        c.start_gateway().await?;
        c.wait_count("a session after the restart", sessions + 1, |c| {
            c.wire_count(is_session)
        })
        .await?;
    }
    c.faults(FaultConfig {
        replay_start_after_stop: true,
        ..FaultConfig::default()
    })?;
    c.command(OperatorCommand::Stop)?;
    c.wait_wire("periodic.stop.result OK", WAIT, |e| {
        e.message_type == "periodic.stop.result" && e.code.as_deref() == Some("OK")
    })
    .await?;
    let replay = c
        .wait_wire("the replayed start", WAIT, |e| {
            e.fault.as_deref() == Some("replayed")
        })
        .await?;
    c.note(format!("replayed {}", replay.message_id));
    // The replay reaches a gateway that has applied the stop (not one that could read it
    // before the stop and apply the stop after it).
    let wire = c.wire();
    let answered = wire
        .iter()
        .position(|e| e.message_type == "periodic.stop.result");
    let replayed = wire
        .iter()
        .position(|e| e.fault.as_deref() == Some("replayed"));
    let (Some(a), Some(r)) = (answered, replayed) else {
        bail!("the stop's answer or the replay missing from the wire log");
    };
    if a > r {
        bail!("the suite's replay was sent before the stop was answered: nothing proved");
    }
    // DES-ENV-8: the start is in the gateway's reply memory (600 s, persisted with its
    // state), so its stored reply is re-sent unchanged, with its original messageId.
    let again = Ctx::poll(WAIT, || {
        Ok(
            match c
                .wire()
                .into_iter()
                .skip(r + 1)
                .find(|e| e.message_type == "periodic.start.result")
            {
                Some(e) => Look::Done(e),
                None => Look::Not(format!(
                    "an answer to the replayed start: not within {} s",
                    WAIT.as_secs()
                )),
            },
        )
    })
    .await?;
    if again.message_id != first.message_id || again.code != first.code {
        bail!(
            "the replayed start was answered {} {:?}: the remembered reply {} {:?} expected, \
             re-sent unchanged (DES-ENV-8{})",
            again.message_id,
            again.code,
            first.message_id,
            first.code,
            if restart {
                "; the reply memory is persisted and restored after a restart"
            } else {
                ""
            }
        );
    }
    // Not applied again: give it the time a start takes (the periodic interval is 1 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    match upload_billing(c, "after_replay.csv", 3, c.seed).await {
        Ok(_) => bail!("the replayed start was applied: an upload after stop was accepted"),
        Err(e) if e.to_string().contains("replied 450") => {}
        Err(e) => bail!("upload after the replay: {e} (450 expected)"),
    }
    if c.wire()[a..].iter().any(|e| e.message_type == "data") {
        bail!("the replayed start was applied: data sent after the stop");
    }
    Ok(())
}

// ------------------------------------------------------------------ identifiers and sealing

/// DES-ID-2: 1..=64 of `[A-Za-z0-9._:-]`.
fn is_message_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The seq range of a data message's wire summary (`dataset kind first..=last …`).
fn data_range(summary: &str) -> Option<std::ops::RangeInclusive<u64>> {
    let (a, b) = summary.split_whitespace().nth(2)?.split_once("..=")?;
    Some(a.parse().ok()?..=b.parse().ok()?)
}

fn ids_unique(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "boot1.csv", 4, c.seed).await?;
        c.wait_view("4 records at the platform", WAIT, |v| v.highest_seq == 4)
            .await?;
        c.stop_gateway().await?;
        c.wait_view("disconnected", WAIT, |v| !v.connected).await?;
        let before = c.wire().len();
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "boot2.csv", 4, c.seed + 1).await?;
        Ctx::poll(WAIT, || {
            let wire = c.wire();
            let reused = wire.iter().skip(before).find_map(|e| {
                let r = (e.direction == "up" && e.message_type == "data")
                    .then(|| data_range(&e.summary))??;
                (*r.start() <= 4).then_some((e, r))
            });
            if let Some((e, r)) = reused {
                bail!(
                    "after the restart, data {} carries seqs {}..={}, assigned before the \
                     restart (DES-ID-4: never reused, also across restarts)",
                    e.message_id,
                    r.start(),
                    r.end()
                );
            }
            Ok(match c.view().highest_seq {
                8 => Look::Done(()),
                _ => Look::Not(format!(
                    "8 records at the platform: not within {} s",
                    WAIT.as_secs()
                )),
            })
        })
        .await?;
        let up: Vec<_> = c
            .wire()
            .into_iter()
            .filter(|e| e.direction == "up")
            .collect();
        let mut seen: std::collections::HashMap<String, (String, String)> =
            std::collections::HashMap::new();
        for e in &up {
            if !is_message_id(&e.message_id) {
                bail!("messageId {:?} is not DES-ID-2 text", e.message_id);
            }
            let this = (e.message_type.clone(), e.summary.clone());
            if let Some(before) = seen.insert(e.message_id.clone(), this.clone())
                && before != this
            {
                bail!(
                    "messageId {} names two messages: {} and {}",
                    e.message_id,
                    before.0,
                    this.0
                );
            }
        }
        c.note(format!("{} uplinks, {} message IDs", up.len(), seen.len()));
        Ok(())
    })
}

fn seal_fresh_key(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "a.csv", 5, c.seed).await?;
        let (five, ten) = (c.seq(5), c.seq(10));
        c.wait_view("5 records at the platform", WAIT, |v| v.highest_seq == five)
            .await?;
        upload_billing(c, "b.csv", 5, c.seed + 1).await?;
        c.wait_view("10 records at the platform", WAIT, |v| v.highest_seq == ten)
            .await?;
        let up: Vec<_> = c
            .wire()
            .into_iter()
            .filter(|e| e.direction == "up")
            .collect();
        let mut keys: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for e in &up {
            let Some(s) = &e.seal else {
                bail!("{} {}: not a JWE", e.message_type, e.message_id);
            };
            if s.alg != "RSA-OAEP-256" || s.enc != "A128CBC-HS256" {
                bail!(
                    "{} {}: alg {} enc {} (DES-SEAL-3: RSA-OAEP-256, A128CBC-HS256)",
                    e.message_type,
                    e.message_id,
                    s.alg,
                    s.enc
                );
            }
            if let Some(other) = keys.insert(s.encrypted_key_sha256.clone(), e.message_id.clone())
                && other != e.message_id
            {
                bail!(
                    "messages {other} and {} share one content key",
                    e.message_id
                );
            }
        }
        let data = up.iter().filter(|e| e.message_type == "data").count();
        if data < 2 {
            bail!("{data} data message(s) seen, 2 or more expected");
        }
        c.note(format!("{} uplinks, {} content keys", up.len(), keys.len()));
        Ok(())
    })
}

// ------------------------------------------------------------------ SHOULDs of operation

fn mon_interval(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.session().await?;
        let statuses = Ctx::poll(WAIT, || {
            let s: Vec<_> = c
                .wire()
                .into_iter()
                .filter(|e| e.message_type == "monitor.status")
                .collect();
            Ok(match s.len() {
                n if n >= 5 => Look::Done(s),
                n => Look::Not(format!(
                    "{n} of 5 monitor.status within {} s",
                    WAIT.as_secs()
                )),
            })
        })
        .await?;
        let at = |e: &WireEvent| {
            chrono::DateTime::parse_from_rfc3339(&e.at).map_err(|x| anyhow!("{}: {x}", e.at))
        };
        let mut gaps = Vec::new();
        for w in statuses.windows(2).take(4) {
            gaps.push((at(&w[1])? - at(&w[0])?).num_milliseconds());
        }
        c.note(format!("gaps between statuses: {gaps:?} ms"));
        // The first follows connect.result at once (DES-MSG-CONN-3); the next four every 2 s
        // (DES-MSG-MON-2): over their three gaps 2 s on average (1.5 to 2.5 s), none missed (no
        // gap over two intervals). Each gap alone is not held to 2 s: a status a stalled
        // gateway sends late may be followed by the next at its scheduled time (a 3.8 s gap
        // and then 0.2 s keep the cadence; seen under load on 2 cores, 2026-12-07).
        let kept = &gaps[1..];
        let mean = kept.iter().sum::<i64>() / i64::try_from(kept.len())?;
        if !(1500..=2500).contains(&mean) || kept.iter().any(|g| *g > 4000) {
            bail!(
                "monitor.status gaps {gaps:?} ms: after the first, {mean} ms on average, every \
                 2000 expected (1500 to 2500 on average, none over 4000)"
            );
        }
        // The operator view shows the latest: not older than the fifth status seen.
        let fifth: serde_json::Value = serde_json::from_str(&statuses[4].summary)
            .map_err(|e| anyhow!("status summary: {e}"))?;
        let uptime = fifth["uptimeSec"]
            .as_u64()
            .ok_or_else(|| anyhow!("no uptimeSec in {}", statuses[4].summary))?;
        c.wait_view("the operator view showing the latest status", WAIT, |v| {
            v.last_status
                .as_ref()
                .is_some_and(|s| s.uptime_sec >= uptime)
        })
        .await?;
        Ok(())
    })
}

fn key_perms(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        use std::os::unix::fs::PermissionsExt;
        let key = c.cfg.data_protection.key.path().to_owned();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
        // Refused: the start fails, or the process exits; running on (connected or not) is
        // the failure.
        let refused = match c.start_gateway().await {
            Err(e) => {
                c.note(format!("refused to start: {e:#}"));
                true
            }
            Ok(()) => {
                let deadline = tokio::time::Instant::now() + WAIT;
                loop {
                    if !c.gateway_running().await {
                        c.note("the gateway exited");
                        break true;
                    }
                    if c.wire().iter().any(|e| e.message_type == "connect")
                        || tokio::time::Instant::now() > deadline
                    {
                        break false;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let _ = c.stop_gateway().await;
        if !refused {
            bail!("the gateway ran with its private key readable by others (0644)");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        c.session().await?;
        Ok(())
    })
}

fn ftp_default_credentials(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        let target = c.ftp_target("billing")?;
        let own = target.user.clone();
        let tries = [
            ("anonymous", "anonymous@example.com"),
            ("ftp", "ftp"),
            ("admin", "admin"),
            (own.as_str(), own.as_str()),
            (own.as_str(), "password"),
        ];
        for (user, password) in tries {
            let mut t = target.clone();
            t.user = user.to_owned();
            match Session::open_as(&t, password).await {
                Ok(s) => {
                    drop(s);
                    bail!("login {user}/{password} accepted");
                }
                Err(e) if e.to_string().contains("530") => {}
                Err(e) => bail!("login {user}/{password}: {e} (530 expected)"),
            }
        }
        upload_billing(c, "after_defaults.csv", 3, c.seed).await?;
        Ok(())
    })
}

fn ftp_commands_refused(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        let target = c.ftp_target("billing")?;
        let mut s = Session::open_as(&target, &target.password)
            .await
            .map_err(|e| anyhow!("FTP session: {e}"))?;
        let mut replies = Vec::new();
        for line in [
            "PORT 127,0,0,1,200,10",
            "EPRT |1|127.0.0.1|51210|",
            "DELE x.csv",
            "MKD sub",
            "RMD sub",
            "RNFR x.csv",
            "SITE CHMOD 777 x.csv",
        ] {
            let (code, text) = s.command(line).await.map_err(|e| anyhow!("{line}: {e}"))?;
            replies.push(format!("{line} → {code} {text}"));
            if !(500..600).contains(&code) {
                bail!("{line} answered {code} {text} (a 5xx refusal expected)");
            }
        }
        s.quit().await;
        c.note(format!("replies: {replies:?}"));
        upload_billing(c, "after_commands.csv", 3, c.seed).await?;
        Ok(())
    })
}

// ------------------------------------------------------------------ in-flight window

/// Distinct data message IDs among the wire events from index `since` on.
fn data_ids_since(c: &Ctx, since: usize) -> std::collections::BTreeSet<String> {
    c.wire()
        .into_iter()
        .skip(since)
        .filter(|e| e.message_type == "data" && e.direction == "up")
        .map(|e| e.message_id)
        .collect()
}

/// Watches the data sent from wire index `since` on for `t`, nothing being acknowledged: at
/// most 8 distinct messages (periodic and resend together, DES-MSG-DATA-3).
async fn window_holds(c: &Ctx, since: usize, t: Duration) -> Result<usize> {
    let until = tokio::time::Instant::now() + t;
    let mut most = 0;
    while tokio::time::Instant::now() < until {
        let n = data_ids_since(c, since).len();
        most = most.max(n);
        if n > 8 {
            bail!("{n} data messages unacknowledged at once (window 8)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(most)
}

fn data_window(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let withheld = FaultConfig {
            withhold_acks: true,
            ..FaultConfig::default()
        };
        c.reconfigure(|cfg| cfg.platform.max_records_per_message = 1)?;
        c.started(ProfileFormat::Json).await?;
        let start = c.wire().len();
        c.faults(withheld.clone())?;
        let since = c.wire().len();
        upload_billing(c, "billing_1.csv", 20, c.seed).await?;
        let periodic = window_holds(c, since, Duration::from_secs(4)).await?;
        if periodic == 0 {
            bail!("no data sent");
        }
        c.faults(FaultConfig::default())?;
        c.wait_all_acknowledged("20 records at the platform, all acknowledged", 20)
            .await?;
        // The backlog of a resend: 20 messages announced, acknowledgements withheld.
        c.faults(withheld)?;
        let since = c.wire().len();
        c.command(OperatorCommand::Resend {
            dataset: None,
            seq: SeqRange::new(1, 20),
            time: None,
        })?;
        Ctx::poll(WAIT, || {
            let r = c
                .wire()
                .into_iter()
                .skip(since)
                .find(|e| e.message_type == "resend.result");
            match r {
                Some(r) if r.code.as_deref() == Some("OK") => Ok(Look::Done(())),
                Some(r) => bail!("resend.result {:?} {}", r.code, r.summary),
                None => Ok(Look::Not("no resend.result".into())),
            }
        })
        .await?;
        let resend = window_holds(c, since, Duration::from_secs(4)).await?;
        c.faults(FaultConfig::default())?;
        Ctx::poll(WAIT, || {
            Ok(match data_ids_since(c, since).len() {
                n if n >= 20 => Look::Done(()),
                n => Look::Not(format!(
                    "{n} of 20 resend messages sent once acknowledgements flowed"
                )),
            })
        })
        .await?;
        c.note(format!(
            "most unacknowledged at once: {periodic} (periodic), {resend} (resend)"
        ));
        // DES-MSG-DATA-6: a data message holds at most `max_records_per_message` records.
        if let Some(e) = c.wire().into_iter().skip(start).find(|e| {
            e.message_type == "data"
                && e.direction == "up"
                && data_range(&e.summary).is_none_or(|r| r.start() != r.end())
        }) {
            bail!(
                "data message {} is `{}`: one record each expected with \
                 `max_records_per_message` 1 (DES-MSG-DATA-6)",
                e.message_id,
                e.summary
            );
        }
        Ok(())
    })
}

// ------------------------------------------------------------------ refused data

/// Files of STORE-QUOTA: the quota is set to exactly this many of its alike files.
const QUOTA_FILES: u64 = 5;

/// Rows of each of STORE-QUOTA's files.
const QUOTA_ROWS: usize = 2;

/// STORE-QUOTA's `n`th file: the same billing rows for every `n` (the case's seed), the first
/// column `Q{n:02}-{row}` — files alike, so they count alike in `storage.bytes` (DES-FTP-6).
fn quota_file(c: &Ctx, n: u64) -> Result<Vec<u8>> {
    let mut t = legacy_sim::Table::generate(legacy_sim::Dataset::Billing, QUOTA_ROWS, c.seed);
    for (i, row) in t.rows.iter_mut().enumerate() {
        row[0] = format!("Q{n:02}-{i}");
    }
    t.to_csv(&legacy_sim::CsvOptions::default())
        .map_err(|e| anyhow!("{e}"))
}

/// Uploads STORE-QUOTA's `n`th file and returns the reply's code.
async fn upload_quota_file(c: &Ctx, target: &legacy_sim::push::FtpTarget, n: u64) -> Result<u32> {
    upload_reply(target, &format!("quota_{n:02}.csv"), &quota_file(c, n)?).await
}

/// Waits for a `monitor.status` that counts the case's first `files` quota files (`lastSeq`)
/// and satisfies `also`; figures may be 10 s old (DES-MSG-MON-1), so the wait is 12 s longer
/// than the suite's. A failure names the last status's figures.
async fn quota_status(
    c: &Ctx,
    files: u64,
    what: &str,
    also: impl Fn(&gateway::protocol::message::MonitorStatus) -> bool,
) -> Result<gateway::protocol::message::MonitorStatus> {
    let seq = c.seq(files * QUOTA_ROWS as u64);
    Ctx::poll(WAIT + Duration::from_secs(12), || {
        Ok(match c.view().last_status {
            Some(s) if s.last_seq >= seq && also(&s) => Look::Done(s),
            last => Look::Not(format!(
                "{what}: not within {} s (the last status: {})",
                WAIT.as_secs() + 12,
                last.map_or("none".into(), |s| format!(
                    "lastSeq {}, storage.bytes {}, health {:?}",
                    s.last_seq, s.storage.bytes, s.health
                ))
            )),
        })
    })
    .await
}

/// A status counting the case's first `files` quota files, whose `storage.bytes` must then be
/// exactly `files × per` (DES-FTP-6: a sum over the records, alike records counting alike).
async fn quota_bytes_exactly(
    c: &Ctx,
    files: u64,
    per: u64,
) -> Result<gateway::protocol::message::MonitorStatus> {
    let want = files * per;
    let st = quota_status(c, files, &format!("a status counting {files} files"), |s| {
        s.storage.bytes >= want
    })
    .await?;
    if st.storage.bytes != want {
        bail!(
            "storage.bytes {} with {files} alike files of {per} bytes each: {want} expected \
             (DES-FTP-6: a sum over the records, alike records counting alike)",
            st.storage.bytes
        );
    }
    Ok(st)
}

/// Restarts the gateway with `storage.quota_bytes` `quota` and waits for its session.
async fn restart_with_quota(c: &mut Ctx, quota: u64) -> Result<()> {
    c.stop_gateway().await?;
    c.reconfigure(|cfg| cfg.storage.quota_bytes = quota)?;
    c.start_gateway().await?;
    c.wait_view("a session after the restart", WAIT, |v| v.connected)
        .await?;
    Ok(())
}

fn store_quota(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        let target = c.ftp_target("billing")?;
        // What one file counts: `storage.bytes` is a sum over the records stored, alike records
        // counting alike (DES-FTP-6), so a fresh store counts 0, one file `per`, two `2 × per`.
        if upload_quota_file(c, &target, 1).await? != 226 {
            bail!("quota_01.csv, the first file, refused under the default quota: 226 expected");
        }
        let per = quota_status(c, 1, "a status counting quota_01.csv", |s| {
            s.storage.bytes > 0
        })
        .await?
        .storage
        .bytes;
        if upload_quota_file(c, &target, 2).await? != 226 {
            bail!("quota_02.csv refused under the default quota: 226 expected");
        }
        let two = quota_status(c, 2, "a status counting quota_02.csv", |s| {
            s.storage.bytes > per
        })
        .await?
        .storage
        .bytes;
        if two != 2 * per {
            bail!(
                "storage.bytes {per} with one file of {QUOTA_ROWS} rows, {two} with two alike \
                 files: {} expected (DES-FTP-6: `storage.bytes` is a sum over the records in \
                 primary storage, alike records counting alike)",
                2 * per
            );
        }
        // The quota: exactly five files. The STOR-time check refuses once it is reached, the
        // commit-time check a file that would take the store over it (DES-FTP-6).
        let quota = QUOTA_FILES * per;
        c.note(format!("one file counts {per} bytes: quota {quota}"));
        restart_with_quota(c, quota).await?;
        for n in 3..QUOTA_FILES {
            let code = upload_quota_file(c, &target, n).await?;
            if code != 226 {
                bail!(
                    "quota_{n:02}.csv answered {code} with {} of {quota} bytes used: 226 expected \
                     (DES-FTP-6)",
                    (n - 1) * per
                );
            }
        }
        // Four files of five: exactly 80 % of the quota, not above it — health `ok`
        // (DES-MSG-MON-1; nothing else in the case's world degrades it, MON-FACTS).
        let four = (QUOTA_FILES - 1) * per;
        let st = quota_bytes_exactly(c, QUOTA_FILES - 1, per).await?;
        if st.health != HealthState::Ok {
            bail!(
                "storage.bytes {four}, exactly 80 % of the {quota}-byte quota, with health {:?}: \
                 `ok` expected (DES-MSG-MON-1: the storage alarm is above 80 %)",
                st.health
            );
        }
        // The fifth file fills the quota exactly: it does not take the store over it.
        let code = upload_quota_file(c, &target, QUOTA_FILES).await?;
        if code != 226 {
            bail!(
                "quota_05.csv answered {code}: with {four} of {quota} bytes used its {per} bytes \
                 fill the quota exactly, 226 expected (DES-FTP-6 refuses a file whose rows would \
                 take primary storage over the quota)"
            );
        }
        let filled_at = std::time::Instant::now();
        let st = quota_bytes_exactly(c, QUOTA_FILES, per).await?;
        if st.health == HealthState::Ok {
            // Its health may be older than its figures; not so 12 s after the upload.
            wait_status_after(
                c,
                filled_at + Duration::from_secs(12),
                "a monitor.status 12 s after quota_05.csv",
            )
            .await?;
            let st = c.view().last_status.ok_or_else(|| anyhow!("no status"))?;
            if st.health == HealthState::Ok {
                bail!(
                    "storage.bytes {}, the whole {quota}-byte quota, with health `ok`: health \
                     `degraded` expected (DES-MSG-MON-1: the storage alarm is above 80 %)",
                    st.storage.bytes
                );
            }
        }
        // Full: the next STOR is refused 452, reported, nothing of it stored.
        let code = upload_quota_file(c, &target, QUOTA_FILES + 1).await?;
        if code != 452 {
            bail!(
                "quota_06.csv answered {code} with storage.bytes at the {quota}-byte quota: none \
                 refused 452 (DES-FTP-6)"
            );
        }
        c.wait_gateway_anomaly(
            "an ingest anomaly `452 DES-FTP-6: storage quota reached`",
            AnomalyKind::Ingest,
            |a| a.detail.contains("452 DES-FTP-6: storage quota reached"),
        )
        .await?;
        // The commit-time check: a quota one byte short of six files lets `STOR` through, and
        // the file's rows, which would take the store over it, are refused 452 all together.
        restart_with_quota(c, (QUOTA_FILES + 1) * per - 1).await?;
        let anomalies = c.gateway_anomalies().len();
        let code = upload_quota_file(c, &target, QUOTA_FILES + 1).await?;
        if code != 452 {
            bail!(
                "quota_06.csv answered {code} with {quota} bytes used and a quota of {}: its \
                 {per} bytes take the store over it, 452 expected (DES-FTP-6: the quota is \
                 checked again inside the commit transaction)",
                (QUOTA_FILES + 1) * per - 1
            );
        }
        let refused_at = std::time::Instant::now();
        c.wait_gateway_anomaly_after(
            "a second ingest anomaly `452 DES-FTP-6: storage quota reached`",
            anomalies,
            AnomalyKind::Ingest,
            |a| a.detail.contains("452 DES-FTP-6: storage quota reached"),
        )
        .await?;
        // Nothing of the refused files, no seq used for them: the platform holds each accepted
        // row once, and a status 12 s after the last refusal still counts five files.
        let rows = QUOTA_FILES * QUOTA_ROWS as u64;
        c.wait_all_acknowledged("every accepted row at the platform, acknowledged", rows)
            .await?;
        exactly_once(c, rows)?;
        let ids: std::collections::BTreeSet<String> = c
            .stored()?
            .into_iter()
            .map(|r| r.fields[0].clone())
            .collect();
        let want: std::collections::BTreeSet<String> = (1..=QUOTA_FILES)
            .flat_map(|n| (0..QUOTA_ROWS).map(move |i| format!("Q{n:02}-{i}")))
            .collect();
        if ids != want {
            bail!("the platform holds rows {ids:?}, the accepted files' {want:?} expected");
        }
        wait_status_after(
            c,
            refused_at + Duration::from_secs(12),
            "a monitor.status 12 s after the last refusal",
        )
        .await?;
        let st = c.view().last_status.ok_or_else(|| anyhow!("no status"))?;
        if st.last_seq != c.seq(rows) || st.storage.bytes != quota {
            bail!(
                "12 s after quota_06.csv was refused 452: lastSeq {}, storage.bytes {}; {} and \
                 {quota} expected (DES-FTP-6: a refused file leaves nothing stored and uses no \
                 seq)",
                st.last_seq,
                st.storage.bytes,
                c.seq(rows)
            );
        }
        Ok(())
    })
}

/// `MAX_RECORD_BYTES` of DES-MSG-DATA-6: the largest wire size of a record.
const RECORD_LIMIT: usize = 65_536;

/// `MAX_MESSAGE_RECORD_BYTES` of DES-MSG-DATA-6: the most record bytes of one data message.
const MESSAGE_RECORD_LIMIT: usize = 114_688;

fn data_split(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        let ds = legacy_sim::Dataset::Billing;
        let col = ds
            .columns()
            .iter()
            .position(|k| k.ty == legacy_sim::ColumnType::String && !k.personal)
            .ok_or_else(|| anyhow!("billing has no unmasked text column"))?;
        // Five records of about 40 000 bytes in one file: two fit a message, three do not.
        let mut table = legacy_sim::Table::generate(ds, 5, c.seed);
        for (i, row) in table.rows.iter_mut().enumerate() {
            row[col] = format!("{i}{}", "a".repeat(40_000));
        }
        let bytes = table
            .to_csv(&legacy_sim::CsvOptions::default())
            .map_err(|e| anyhow!("{e}"))?;
        upload_bytes(&c.ftp_target("billing")?, "wide.csv", &bytes).await?;
        let stored = stored_at_least(c, 5)
            .await
            .map_err(|e| anyhow!("{e}; data and acks: {:?}", data_and_acks(c)))?;
        let keys = gateway::security::MaskingKeys::load_dir(
            c.cfg.masking.keys_dir.path(),
            c.cfg.masking.active_key.as_str(),
        )?;
        let id = gateway::protocol::ids::Dataset::new("billing").map_err(|e| anyhow!("{e}"))?;
        let columns = &c
            .cfg
            .dataset(&id)
            .ok_or_else(|| anyhow!("billing not provisioned"))?
            .columns;
        for (i, r) in stored.iter().enumerate() {
            if r.seq != c.seq(i as u64 + 1) {
                bail!("record {i} has seq {}", r.seq);
            }
            record_as_uploaded(r, &table.rows[i], columns, &keys)?;
        }
        // The periodic data messages partition 1..=5, each within the byte bound, measured
        // here from the records as the platform received them (their wire sizes, DES-MSG-DATA-6).
        let data: Vec<(String, std::ops::RangeInclusive<u64>)> = c
            .wire()
            .into_iter()
            .filter(|e| e.message_type == "data" && e.summary.contains(" periodic "))
            .filter_map(|e| Some((e.message_id.clone(), data_range(&e.summary)?)))
            .collect();
        // A retransmission repeats its message ID: each message counts once.
        let by_id: std::collections::BTreeMap<&str, &std::ops::RangeInclusive<u64>> =
            data.iter().map(|(id, r)| (id.as_str(), r)).collect();
        let mut covered: Vec<u64> = by_id.values().flat_map(|r| (*r).clone()).collect();
        covered.sort_unstable();
        let want: Vec<u64> = (1..=5).map(|k| c.seq(k)).collect();
        let ranges: Vec<_> = data.iter().map(|(_, r)| r.clone()).collect();
        if covered != want {
            bail!(
                "periodic data messages with ranges {ranges:?}: every seq of {}..={} in exactly \
                 one message expected (DES-MSG-DATA-6: the gateway splits the run into batches)",
                want[0],
                want[4]
            );
        }
        for (id, range) in &data {
            let sizes = stored
                .iter()
                .filter(|r| range.contains(&r.seq))
                .map(|r| record_sizes(&r.fields).map(|(j, x)| j.max(x)))
                .collect::<Result<Vec<usize>>>()?;
            let sum: usize = sizes.iter().sum();
            if sum > MESSAGE_RECORD_LIMIT {
                bail!(
                    "data message {id} holds {range:?}, records of wire sizes {sizes:?}: {sum} \
                     bytes, over {MESSAGE_RECORD_LIMIT} (DES-MSG-DATA-6)"
                );
            }
        }
        c.note(format!("periodic data messages {ranges:?}"));
        Ok(())
    })
}

/// A record's two encodings' sizes in bytes (DES-MSG-DATA-6), written out here from the rule's
/// text rather than counted as the gateway counts: the JSON array as `serde_json` writes it
/// (DES-PROF-3), and the `sgw:Record` element (DES-PROF-5) with a 20-digit `seq`, its text
/// escaped as exclusive c14n escapes it.
fn record_sizes(fields: &[String]) -> Result<(usize, usize)> {
    let json = serde_json::to_string(fields)?.len();
    let body: String = fields
        .iter()
        .map(|f| {
            let text = f
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('\r', "&#xD;");
            format!("<sgw:F>{text}</sgw:F>")
        })
        .collect();
    let xml = format!("<sgw:Record seq=\"{}\">{body}</sgw:Record>", u64::MAX).len();
    Ok((json, xml))
}

/// Waits until the platform has stored at least `n` of the case's records; those it stored.
async fn stored_at_least(
    c: &Ctx,
    n: usize,
) -> Result<Vec<platform_sim::platform::store::RecordRow>> {
    Ctx::poll(WAIT, || {
        let s = c.stored()?;
        Ok(match s.len() {
            k if k >= n => Look::Done(s),
            k => Look::Not(format!("{k} of {n} records stored by the platform")),
        })
    })
    .await
}

fn ftp_record_at_limit(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        let target = c.ftp_target("billing")?;
        let ds = legacy_sim::Dataset::Billing;
        // The column legacy-sim's long record fills: the first unmasked text column.
        let col = ds
            .columns()
            .iter()
            .position(|k| k.ty == legacy_sim::ColumnType::String && !k.personal)
            .ok_or_else(|| anyhow!("billing has no unmasked text column"))?;
        let mut table = legacy_sim::Table::generate(ds, 1, c.seed);
        let file = |t: &legacy_sim::Table| {
            t.to_csv(&legacy_sim::CsvOptions::default())
                .map_err(|e| anyhow!("{e}"))
        };
        // Calibration: the record with `x` in the column, as the platform received it (the
        // masked columns' length is the gateway's to choose).
        table.rows[0][col] = "x".into();
        upload_bytes(&target, "limit_0.csv", &file(&table)?).await?;
        let first = c.seq(1);
        let calibration = stored_at_least(c, 1).await?;
        let (j, x) = record_sizes(&calibration[0].fields)?;
        // `x` counts 1 in both encodings.
        let (json_rest, xml_rest) = (j - 1, x - 1);
        c.note(format!(
            "calibration record {first}: JSON {j} bytes, XML {x} bytes with `x` in column {col}"
        ));
        // JSON: `\` is 2 bytes (1 in XML); XML: `&` is 5 (`&amp;`; 1 in JSON); `a` 1 in both.
        let json_at = |over: usize| {
            let need = RECORD_LIMIT + over - json_rest;
            format!("{}{}", "\\".repeat(need / 2), "a".repeat(need % 2))
        };
        let xml_at = |over: usize| {
            let need = RECORD_LIMIT + over - xml_rest;
            format!("{}{}", "&".repeat(need / 5), "a".repeat(need % 5))
        };
        let files = [
            ("limit_json.csv", json_at(0)),
            ("over_json.csv", json_at(1)),
            ("limit_xml.csv", xml_at(0)),
            ("over_xml.csv", xml_at(1)),
        ];
        let mut codes = Vec::new();
        for (name, value) in &files {
            table.rows[0][col] = value.clone();
            codes.push(upload_reply(&target, name, &file(&table)?).await?);
        }
        c.note(format!("reply codes {codes:?}"));
        if codes != [226, 552, 226, 552] {
            bail!(
                "reply codes {codes:?} for records of wire size 65 536 (JSON), 65 537 (JSON), \
                 65 536 (XML), 65 537 (XML): [226, 552, 226, 552] expected (DES-MSG-DATA-6: \
                 a record over 65 536 bytes in either encoding is refused, one of 65 536 taken)"
            );
        }
        stored_at_least(c, 3).await?;
        // Anything of a refused file would follow at once.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = c.stored()?;
        if s.len() != 3 {
            bail!(
                "{} records stored by the platform: the calibration record and the two at the \
                 limit expected",
                s.len()
            );
        }
        for (r, (name, value), want) in [
            (&s[1], &files[0], (RECORD_LIMIT, 0)),
            (&s[2], &files[2], (0, RECORD_LIMIT)),
        ] {
            if r.fields.get(col) != Some(value) {
                bail!(
                    "record {} (from {name}): column {col} is not the uploaded value ({} of {} \
                     characters)",
                    r.seq,
                    r.fields.get(col).map_or(0, |f| f.chars().count()),
                    value.chars().count()
                );
            }
            let (j, x) = record_sizes(&r.fields)?;
            let measured = if want.0 > 0 { j } else { x };
            if measured != RECORD_LIMIT {
                bail!(
                    "record {} (from {name}) measures JSON {j} / XML {x} bytes at the platform: \
                     the calibration did not hold ({RECORD_LIMIT} expected)",
                    r.seq
                );
            }
        }
        Ok(())
    })
}

/// Sends a resend of `first..=last` of the case's seqs; its `resend.result` (the wire event).
async fn resend_result(c: &mut Ctx, first: u64, last: u64) -> Result<WireEvent> {
    resend_result_of(c, None, first, last).await
}

/// [`resend_result`], only the records of `dataset` when given.
async fn resend_result_of(
    c: &mut Ctx,
    dataset: Option<&str>,
    first: u64,
    last: u64,
) -> Result<WireEvent> {
    let range = SeqRange::new(c.seq(first), c.seq(last)).ok_or_else(|| anyhow!("range"))?;
    let dataset = dataset
        .map(gateway::protocol::ids::Dataset::new)
        .transpose()
        .map_err(|e| anyhow!("{e}"))?;
    let id = c.sent(OperatorCommand::Resend {
        dataset,
        seq: Some(range),
        time: None,
    })?;
    c.wait_wire(
        &format!("resend.result to {}..={}", range.first, range.last),
        WAIT,
        |e| e.message_type == "resend.result" && e.in_reply_to.as_deref() == Some(id.as_str()),
    )
    .await
}

fn resend_busy(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "billing_1.csv", 6, c.seed).await?;
        c.wait_all_acknowledged("6 records acknowledged", 6).await?;
        c.faults(FaultConfig {
            withhold_acks: true,
            ..FaultConfig::default()
        })?;
        let is_resend_data =
            |e: &WireEvent| e.message_type == "data" && e.summary.contains(" resend ");
        let first = resend_result(c, 1, 6).await?;
        if first.code.as_deref() != Some("OK") || !first.summary.contains("\"records\":6") {
            bail!(
                "resend.result {:?} {} to 1..=6 of 6 records: OK with 6 expected",
                first.code,
                first.summary
            );
        }
        let first_request = first.in_reply_to.clone().unwrap_or_default();
        c.wait_wire("the first resend's data, naming its request", WAIT, |e| {
            is_resend_data(e)
                && e.summary
                    .ends_with(&format!(" for request {first_request}"))
        })
        .await?;
        // Unacknowledged, so still running (DES-MSG-RS-3): the next request is BUSY.
        let second = resend_result(c, 1, 2).await?;
        let zero = ["\"records\":0", "\"messages\":0", "\"archived\":0"];
        if second.code.as_deref() != Some("BUSY")
            || !zero.iter().all(|z| second.summary.contains(z))
        {
            bail!(
                "resend.result {:?} {} to a second request while the first resend's data is \
                 unacknowledged: BUSY with records, messages and archived 0 expected \
                 (DES-MSG-RS-2)",
                second.code,
                second.summary
            );
        }
        c.faults(FaultConfig::default())?;
        // The first resend ends when its data is acknowledged (retransmitted after
        // ackTimeoutSec, now acknowledged).
        Ctx::poll(WAIT, || {
            let wire = c.wire();
            let open = unacknowledged_data(&wire, is_resend_data);
            Ok(match open.is_empty() {
                true => Look::Done(()),
                false => Look::Not(format!(
                    "the first resend's data acknowledged: {open:?} not within {} s",
                    WAIT.as_secs()
                )),
            })
        })
        .await?;
        // A gateway that queued the BUSY request's records releases them as the first
        // resend's acks free the window, so before it handles the next request: asked after
        // those acks, its reply comes after any such data on the wire.
        let third = resend_result(c, 1, 2).await?;
        // Nothing sent for the BUSY request (DES-MSG-RS-3: data names its request).
        let busy_request = second.in_reply_to.clone().unwrap_or_default();
        let for_busy = format!(" for request {busy_request}");
        if let Some(e) = c
            .wire()
            .into_iter()
            .find(|e| is_resend_data(e) && e.summary.ends_with(&for_busy))
        {
            bail!(
                "resend data {} ({}) sent for the request answered BUSY: nothing is sent for a \
                 refused request (DES-MSG-RS-2)",
                e.message_id,
                e.summary
            );
        }
        if third.code.as_deref() != Some("OK") || !third.summary.contains("\"records\":2") {
            bail!(
                "resend.result {:?} {} to 1..=2 once the first resend was acknowledged: OK \
                 with 2 records expected (the earlier resend is finished)",
                third.code,
                third.summary
            );
        }
        Ok(())
    })
}

fn data_refused(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let only_ledger: std::collections::BTreeSet<gateway::protocol::ids::Dataset> =
            [gateway::protocol::ids::Dataset::new("ledger").map_err(|e| anyhow!("{e}"))?]
                .into_iter()
                .collect();
        c.handle.set_registered_datasets(&c.gw, Some(only_ledger));
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "billing_1.csv", 5, c.seed).await?;
        let refused = c
            .wait_wire("data.ack UNKNOWN_DATASET", WAIT, |e| {
                e.message_type == "data.ack" && e.code.as_deref() == Some("UNKNOWN_DATASET")
            })
            .await?;
        let id = refused.in_reply_to.clone().unwrap_or_default();
        c.wait_view("monitor.status with the 5 records held", WAIT, |v| {
            v.last_status
                .as_ref()
                .is_some_and(|s| s.storage.held == 5 && s.storage.unacked == 5)
        })
        .await
        .map_err(|e| anyhow!("{e}; last status {:?}", c.view().last_status))?;
        // DES-MSG-DATA-5: reported as an anomaly of kind `malformed` (only SECURITY_FAILED
        // is `security`) naming the rule, the code, the dataset and the range.
        let (first, last) = (c.seq(1), c.seq(5));
        c.wait_view(
            "the given-up anomaly (malformed, DES-MSG-DATA-5)",
            WAIT,
            |v| {
                v.anomalies.iter().any(|a| {
                    given_up_anomaly(a, AnomalyKind::Malformed, "billing", first, last)
                        && a.detail.contains("UNKNOWN_DATASET")
                })
            },
        )
        .await
        .map_err(|e| anyhow!("{e}; the gateway's anomalies: {:?}", c.gateway_anomalies()))?;
        // Given up at once: the message is not sent again (an ack timeout is 2 s).
        tokio::time::sleep(Duration::from_secs(5)).await;
        let sent = c
            .wire()
            .iter()
            .filter(|e| e.message_type == "data" && e.direction == "up" && e.message_id == id)
            .count();
        if sent != 1 {
            bail!(
                "the refused data message {id} was sent {sent} times (given up at once expected)"
            );
        }
        if !c.stored()?.is_empty() {
            bail!("the platform stored refused records");
        }
        c.handle.set_registered_datasets(&c.gw, None);
        c.command(OperatorCommand::Resend {
            dataset: None,
            seq: SeqRange::new(first, last),
            time: None,
        })?;
        c.wait_view("the held records delivered by the resend", WAIT, |v| {
            v.highest_seq == last
                && v.last_status
                    .as_ref()
                    .is_some_and(|s| s.storage.held == 0 && s.storage.unacked == 0)
        })
        .await
        .map_err(|e| anyhow!("{e}; last status {:?}", c.view().last_status))?;
        Ok(())
    })
}

fn data_given_up(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        use gateway::protocol::gateway_side::MAX_DATA_TRANSMISSIONS;
        let t = f64::from(QUICK_ACK_TIMEOUT_SEC);
        c.started(ProfileFormat::Json).await?;
        c.faults(FaultConfig {
            late_acks: true,
            ..FaultConfig::default()
        })?;
        upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        let (first, last) = (c.seq(1), c.seq(3));
        let data = c
            .wait_wire("the file's data message", WAIT, |e| {
                e.message_type == "data" && e.direction == "up"
            })
            .await?;
        // T + 2T + 4T + 8T × 6 = 55 s at T = 1 s, then the anomaly.
        let within = Duration::from_secs(80);
        c.wait_view(
            "the given-up anomaly (malformed, DES-MSG-DATA-5) after 9 transmissions",
            within,
            |v| {
                v.anomalies
                    .iter()
                    .any(|a| given_up_anomaly(a, AnomalyKind::Malformed, "billing", first, last))
            },
        )
        .await
        .map_err(|e| {
            let n = c
                .wire()
                .iter()
                .filter(|w| w.message_type == "data" && w.message_id == data.message_id)
                .count();
            anyhow!(
                "{e}; data message {} sent {n} times; the gateway's anomalies: {:?}",
                data.message_id,
                c.gateway_anomalies()
            )
        })?;
        let sent: Vec<std::time::Instant> = c
            .wire_timed()
            .into_iter()
            .filter(|(w, _)| w.message_type == "data" && w.message_id == data.message_id)
            .map(|(_, at)| at)
            .collect();
        let gaps: Vec<f64> = sent
            .windows(2)
            .map(|p| p[1].saturating_duration_since(p[0]).as_secs_f64())
            .collect();
        c.note(format!(
            "data message {} sent {} times, s between: {gaps:.3?}",
            data.message_id,
            sent.len()
        ));
        if u32::try_from(sent.len())? != MAX_DATA_TRANSMISSIONS {
            bail!(
                "data message {} sent {} times without a data.ack before it was given up: \
                 {MAX_DATA_TRANSMISSIONS} expected (DES-MSG-DATA-5 (a))",
                data.message_id,
                sent.len()
            );
        }
        // DES-MSG-DATA-3: waits T, 2T, 4T, 8T, 8T, … (arrival times: half of each at least).
        for (i, g) in gaps.iter().enumerate() {
            let wait = t * f64::from(1u32 << i.min(3));
            if *g < wait / 2.0 {
                bail!(
                    "transmission {} of {} came {g:.3} s after the one before: the timeout then \
                     is {wait} s (DES-MSG-DATA-3: T, 2T, 4T, 8T, 8T, … with T = ackTimeoutSec \
                     {QUICK_ACK_TIMEOUT_SEC} s)",
                    i + 2,
                    data.message_id
                );
            }
        }
        c.wait_view("monitor.status with the 3 records held", WAIT, |v| {
            v.last_status
                .as_ref()
                .is_some_and(|s| s.storage.held == 3 && s.storage.unacked == 3)
        })
        .await
        .map_err(|e| anyhow!("{e}; last status {:?}", c.view().last_status))?;
        // The platform stored the records; its acknowledgements, kept back until now, arrive
        // after the give-up: a late OK of a given-up message acknowledges its records and
        // clears held (DES-MSG-DATA-5) — no resend needed, and none asked for (the platform
        // holds every seq: no gap, DES-MSG-RS-4).
        c.faults(FaultConfig::default())?;
        c.wait_view(
            "the held records acknowledged by the late data.ack OK",
            WAIT,
            |v| {
                v.last_status
                    .as_ref()
                    .is_some_and(|s| s.storage.held == 0 && s.storage.unacked == 0)
            },
        )
        .await
        .map_err(|e| {
            anyhow!(
                "{e}: DES-MSG-DATA-5, a late OK data.ack of a given-up message acknowledges its \
                 records; last status {:?}",
                c.view().last_status
            )
        })?;
        if let Some(r) = c.wire().iter().find(|e| e.message_type == "resend.request") {
            bail!(
                "a resend.request ({}) in the case: the records were to be acknowledged by the \
                 late data.ack alone",
                r.message_id
            );
        }
        exactly_once(c, 3)
    })
}

/// Whether `a` is the gateway's report of giving up records `first..=last` of `dataset`
/// (DES-MSG-DATA-5): of `kind` (`security` for SECURITY_FAILED, else `malformed`), the rule,
/// the dataset and both ends of the range in its detail.
fn given_up_anomaly(
    a: &platform_sim::ops::AnomalyView,
    kind: AnomalyKind,
    dataset: &str,
    first: u64,
    last: u64,
) -> bool {
    a.source == "gateway"
        && a.kind == kind
        && a.rule == "DES-MSG-DATA-5"
        && a.detail.contains(dataset)
        && a.detail.contains(&first.to_string())
        && a.detail.contains(&last.to_string())
}

// ------------------------------------------------------------------ loss and disorder

/// Every record the platform stored in this case has a distinct seq, and they are exactly the
/// case's first `n` ([`Ctx::seq`]). (The platform keeps one record per seq and ignores a
/// retransmitted copy: what this catches is a seq missing, or a record under a second seq.)
fn exactly_once(c: &Ctx, n: u64) -> Result<()> {
    let mut seqs: Vec<u64> = c.stored()?.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    let (first, last) = (c.seq(1), c.seq(n));
    if seqs != (first..=last).collect::<Vec<u64>>() {
        bail!("the platform holds seqs {seqs:?}, {first}..={last} once each expected");
    }
    Ok(())
}

/// How many files LOSSY-DOWNLINK sends at most until its faults have hit a message both ways.
const LOSSY_FILES: u64 = 30;

fn lossy_downlink(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        c.faults(FaultConfig {
            drop_percent: 30,
            duplicate_percent: 30,
            reorder: true,
            ..FaultConfig::default()
        })?;
        // One small file at a time, each sent before the next, so that the faults act on many
        // acknowledgements (not one), until they have dropped one and duplicated another: a
        // case whose faults hit nothing would prove nothing.
        let hit = |c: &Ctx, what: &str| {
            c.wire().iter().any(|e| {
                e.direction == "down"
                    && (what != "dropped" || e.message_type == "data.ack")
                    && e.fault.as_deref().is_some_and(|f| f.contains(what))
            })
        };
        let mut rows = 0;
        for i in 0..LOSSY_FILES {
            upload_billing(c, &format!("billing_{i}.csv"), 2, c.seed + i).await?;
            rows += 2;
            let last = c.seq(rows);
            c.wait_view("the file's records at the platform", WAIT, |v| {
                v.highest_seq == last
            })
            .await?;
            if i >= 2 && hit(c, "dropped") && hit(c, "duplicated") {
                break;
            }
        }
        if !(hit(c, "dropped") && hit(c, "duplicated")) {
            bail!(
                "the suite's faults dropped no data.ack or duplicated nothing within \
                 {LOSSY_FILES} files (seed {}): nothing was proved; run again with another --seed",
                c.seed
            );
        }
        c.note(format!(
            "{} records in {} files; downlinks dropped {}, duplicated {}",
            rows,
            rows / 2,
            c.wire()
                .iter()
                .filter(|e| e.fault.as_deref() == Some("dropped"))
                .count(),
            c.wire()
                .iter()
                .filter(|e| e.fault.as_deref().is_some_and(|f| f.contains("duplicated")))
                .count()
        ));
        // Several acknowledgement timeouts (2 s) under loss, duplication and reordering, then
        // the network heals: everything converges, nothing twice.
        tokio::time::sleep(Duration::from_secs(6)).await;
        exactly_once(c, rows)?;
        // A dropped `data.ack` leaves its message unacknowledged: it is sent again.
        let mut ids = std::collections::BTreeMap::<String, usize>::new();
        for e in c.wire().iter().filter(|e| e.message_type == "data") {
            *ids.entry(e.message_id.clone()).or_default() += 1;
        }
        if !ids.values().any(|n| *n > 1) {
            bail!("a data.ack was dropped, yet no data message was sent again within 6 s");
        }
        c.faults(FaultConfig::default())?;
        c.wait_all_acknowledged("every record acknowledged once the network healed", rows)
            .await?;
        exactly_once(c, rows)
    })
}

fn link_loss(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        back_off_from_the_start(c).await?;
        for (i, name) in ["billing_1.csv", "billing_2.csv"].into_iter().enumerate() {
            let seed = c.seed + i as u64;
            // The link is cut while the file's data message is unacknowledged: the platform
            // has it, its `data.ack` is withheld.
            c.faults(FaultConfig {
                withhold_acks: true,
                ..FaultConfig::default()
            })?;
            upload_billing(c, name, 10, seed).await?;
            let last = c.seq(10 * (i as u64 + 1));
            c.wait_view("the file's data message at the platform", WAIT, |v| {
                v.highest_seq == last
            })
            .await?;
            let connects = c
                .wire()
                .iter()
                .filter(|e| e.message_type == "connect")
                .count();
            c.cut_link()?;
            c.faults(FaultConfig::default())?;
            Ctx::poll(WAIT, || {
                let now = c
                    .wire()
                    .iter()
                    .filter(|e| e.message_type == "connect")
                    .count();
                Ok(match now > connects {
                    true => Look::Done(()),
                    false => Look::Not(format!(
                        "no new connect within {} s of the cut",
                        WAIT.as_secs()
                    )),
                })
            })
            .await?;
        }
        // Unacknowledged at each cut, the records count as delivered only through the new
        // session (`ackedThrough`, or a retransmission acknowledged).
        let twenty = c.seq(20);
        c.wait_view("all 20 records stored and acknowledged", WAIT, |v| {
            v.connected
                && v.highest_seq == twenty
                && v.last_status
                    .as_ref()
                    .is_some_and(|s| s.last_seq == twenty && s.storage.unacked == 0)
        })
        .await
        .map_err(|e| anyhow!("{e}; last status {:?}", c.view().last_status))?;
        exactly_once(c, 20)
    })
}

// ------------------------------------------------------------------ authentic updates only

/// The CRL's nextUpdate as the gateway's last `monitor.status` lists it (DES-MSG-MON-1:
/// `certificates`, name `crl`).
fn status_crl_next_update(
    v: &platform_sim::ops::GatewayView,
) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let s = v.last_status.as_ref()?;
    s.certificates
        .iter()
        .find(|e| e.name == "crl")
        .map(|e| e.not_after)
}

fn crl_rollback(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.reconfigure(|cfg| cfg.data_protection.crl_refresh_sec = gateway::config::Secs(1))?;
        c.started(ProfileFormat::Json).await?;
        let listing = c
            .wait_view("a monitor.status listing the CRL", WAIT, |v| {
                status_crl_next_update(v).is_some()
            })
            .await?;
        let first =
            status_crl_next_update(&listing).ok_or_else(|| anyhow!("no CRL in monitor.status"))?;
        // nextUpdate is listed to the second: the newer CRL's is a second later at least.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let detail = c.resign_crl()?;
        c.note(format!(
            "{detail}; the gateway held the CRL with nextUpdate {first}"
        ));
        let newer = Ctx::poll(WAIT, || {
            let now = status_crl_next_update(&c.view());
            Ok(match now {
                Some(n) if n > first => Look::Done(n),
                n => Look::Not(format!(
                    "the newer CRL installed (crl_refresh_sec 1): monitor.status lists nextUpdate \
                     {n:?}, {first} before"
                )),
            })
        })
        .await?;
        let fetched = c.crl_fetches();
        let anomalies = c.gateway_anomalies().len();
        c.faults(FaultConfig {
            stale_crl: true,
            ..FaultConfig::default()
        })?;
        // Two fetches of the stale CRL at least (one may have been under way).
        c.wait_crl_fetches(
            fetched + 1,
            "the stale CRL fetched twice (crl_refresh_sec 1)",
        )
        .await?;
        c.wait_gateway_anomaly_after(
            "an anomaly of kind certificate for the older CRL (DES-CERT-3)",
            anomalies,
            AnomalyKind::Certificate,
            |_| true,
        )
        .await?;
        // A status stamped 10 s after the refusal at least (DES-MSG-MON-1: its figures are at
        // most 10 s old; it arrives within 2 s of its stamp): still the newer CRL.
        let fresh = std::time::Instant::now() + Duration::from_secs(12);
        wait_status_after(c, fresh, "a monitor.status 12 s after the refusal").await?;
        let listed = status_crl_next_update(&c.view());
        if listed != Some(newer) {
            bail!(
                "monitor.status lists the CRL's nextUpdate {listed:?} 12 s after the older CRL \
                 was served and refused: the newer one's {newer} expected (the older CRL \
                 installed: a rollback, DES-CERT-3; figures at most 10 s old, DES-MSG-MON-1)"
            );
        }
        upload_billing(c, "after_stale_crl.csv", 3, c.seed).await?;
        c.wait_all_acknowledged("an upload acknowledged with the newer CRL held", 3)
            .await?;
        Ok(())
    })
}

fn cert_endpoint_unreachable(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.reconfigure(|cfg| cfg.data_protection.crl_refresh_sec = gateway::config::Secs(1))?;
        c.started(ProfileFormat::Json).await?;
        c.wait_crl_fetches(0, "the start-up fetch of the CRL")
            .await?;
        c.faults(FaultConfig {
            https_unreachable: true,
            ..FaultConfig::default()
        })?;
        let fetched = c.crl_fetches();
        c.wait_count(
            "3 attempts on the unreachable endpoint (crl_refresh_sec 1)",
            3,
            Ctx::https_closed,
        )
        .await?;
        // What it holds still serves: data sealed to the platform's certificate, commands
        // verified against it and the CRL.
        upload_billing(c, "while_unreachable.csv", 3, c.seed).await?;
        c.wait_all_acknowledged(
            "an upload delivered and acknowledged while the endpoint is unreachable",
            3,
        )
        .await?;
        let from = c.wire().len();
        c.command(OperatorCommand::Stop)?;
        c.command(OperatorCommand::Start {
            datasets: vec![],
            interval_sec: 1,
            format: ProfileFormat::Json,
        })?;
        Ctx::poll(WAIT, || {
            let wire = c.wire();
            let ok = |ty: &str| {
                wire[from..]
                    .iter()
                    .any(|e| e.message_type == ty && e.code.as_deref() == Some("OK"))
            };
            Ok(
                match ok("periodic.stop.result") && ok("periodic.start.result") {
                    true => Look::Done(()),
                    false => Look::Not(format!(
                        "a stop and a start answered OK while the endpoint is unreachable: not \
                         within {} s",
                        WAIT.as_secs()
                    )),
                },
            )
        })
        .await?;
        let closed = c.https_closed();
        c.note(format!("{closed} connections closed while unreachable"));
        if c.crl_fetches() > fetched + 1 {
            bail!("the CRL was served while the endpoint was unreachable: nothing proved");
        }
        let before = c.crl_fetches();
        c.faults(FaultConfig::default())?;
        c.wait_crl_fetches(before, "the CRL fetched again once the endpoint is back")
            .await?;
        Ok(())
    })
}

fn pstop_held_cert_revoked(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.reconfigure(|cfg| cfg.data_protection.crl_refresh_sec = gateway::config::Secs(1))?;
        c.started(ProfileFormat::Json).await?;
        let crl_before = c.crl_fetches();
        let detail = c.revoke_platform_certificate()?;
        c.note(detail);
        // A fetch may have been under way at the revocation: wait for two more.
        c.wait_crl_fetches(
            crl_before + 1,
            "the CRL fetched twice again (crl_refresh_sec 1)",
        )
        .await?;
        c.command(OperatorCommand::Stop)?;
        let stop = c
            .wait_wire("periodic.stop under the revoked certificate", WAIT, |e| {
                e.message_type == "periodic.stop"
            })
            .await?;
        // The gateway can seal nothing to a revoked certificate: it keeps its reports until
        // it holds a new one (DES-CERT-8).
        tokio::time::sleep(Duration::from_secs(1)).await;
        upload_billing(c, "after_refused_stop.csv", 3, c.seed)
            .await
            .map_err(|e| {
                anyhow!("upload after the refused stop: {e} (226: the stop was not applied)")
            })?;
        if c.wire()
            .iter()
            .any(|e| e.in_reply_to.as_deref() == Some(stop.message_id.as_str()))
        {
            bail!("the stop signed under a revoked certificate was answered");
        }
        let detail = c.rotate_platform_certificate()?;
        c.note(detail);
        c.wait_wire(
            "periodic.stop.result OK under the new certificate",
            WAIT,
            |e| e.message_type == "periodic.stop.result" && e.code.as_deref() == Some("OK"),
        )
        .await?;
        let reports = async {
            c.wait_gateway_anomaly(
                "the refused stop reported (anomaly of kind security, IF-PSTART-2), kept until \
                 the gateway could seal again (DES-CERT-8)",
                AnomalyKind::Security,
                |a| a.rule == "IF-PSTART-2",
            )
            .await?;
            c.wait_gateway_anomaly(
                "the episode reported (anomaly of kind certificate, rule DES-CERT-8)",
                AnomalyKind::Certificate,
                |a| a.rule == "DES-CERT-8",
            )
            .await
        };
        let result = match reports.await {
            // DES-CERT-8 (4), DES-MSG-DATA-5: the data given up meanwhile was held, and the
            // platform's resend after the trailing gap delivers it.
            Ok(_) => c
                .wait_all_acknowledged("the 3 records held during the episode delivered", 3)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        c.note(format!("gateway anomalies: {:?}", c.gateway_anomalies()));
        result?;
        // Now that it can seal again, still no reply to the refused stop (one kept and sent
        // late would mean it had been accepted).
        if c.wire()
            .iter()
            .any(|e| e.in_reply_to.as_deref() == Some(stop.message_id.as_str()))
        {
            bail!("the stop signed under a revoked certificate was answered once sealing resumed");
        }
        Ok(())
    })
}

fn platform_cert_expires(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        const VALID_FOR: Duration = Duration::from_secs(12);
        // Watched after the first fetch of the episode: 4 statuses that cannot be sealed.
        const WATCH: Duration = Duration::from_secs(8);
        let expires = tokio::time::Instant::now() + VALID_FOR;
        let detail = c.rotate_platform_certificate_expiring(VALID_FOR)?;
        c.note(detail);
        c.started(ProfileFormat::Json).await?;
        // Sampled a second before the expiry: nothing is due to fetch `platform.pem` until the
        // certificate held fails (the CRL is fetched hourly, DES-CERT-3).
        tokio::time::sleep_until(expires - Duration::from_secs(1)).await;
        let before = c.platform_pem_fetches();
        let first = Ctx::poll(WAIT, || {
            Ok(match c.platform_pem_fetches() > before {
                true => Look::Done(tokio::time::Instant::now()),
                false => Look::Not(format!(
                    "platform.pem not fetched within {} s of the held one's expiry \
                     (DES-CERT-8 (2): at once)",
                    WAIT.as_secs()
                )),
            })
        })
        .await?;
        c.note(format!(
            "platform.pem fetched {} ms after the expiry",
            first.saturating_duration_since(expires).as_millis()
        ));
        upload_billing(c, "during_episode.csv", 3, c.seed)
            .await
            .map_err(|e| anyhow!("upload while nothing can be sealed: {e}"))?;
        tokio::time::sleep_until(first + WATCH).await;
        let fetched = c.platform_pem_fetches() - before;
        c.note(format!(
            "platform.pem fetched {fetched} time(s) in the episode's first {} s",
            WATCH.as_secs()
        ));
        if fetched != 1 {
            bail!(
                "platform.pem fetched {fetched} times in the {} s after the held one expired, \
                 while status and data could not be sealed (DES-CERT-8 (2): at most once per \
                 5 minutes)",
                WATCH.as_secs()
            );
        }
        stop_under_new_certificate(c, "periodic.stop.result OK under the new certificate").await?;
        c.wait_gateway_anomaly(
            "the episode reported once sealing works again (anomaly of kind certificate, rule \
             DES-CERT-8)",
            AnomalyKind::Certificate,
            |a| a.rule == "DES-CERT-8",
        )
        .await?;
        c.wait_all_acknowledged("the 3 records held during the episode delivered", 3)
            .await?;
        exactly_once(c, 3)
    })
}

/// Rotates the platform's data-protection certificate, then sends a stop signed under the new
/// one and waits (`what`) until it is answered OK: the gateway learnt the new certificate and
/// verified it (DES-SEAL-6, DES-CERT-4).
async fn stop_under_new_certificate(c: &mut Ctx, what: &str) -> Result<()> {
    let detail = c.rotate_platform_certificate()?;
    c.note(detail);
    c.command(OperatorCommand::Stop)?;
    c.wait_wire(what, WAIT, |e| {
        e.message_type == "periodic.stop.result" && e.code.as_deref() == Some("OK")
    })
    .await?;
    Ok(())
}

fn platform_cert_rotated(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        c.wait_view("3 records acknowledged", WAIT, |v| {
            v.last_status
                .as_ref()
                .is_some_and(|s| s.last_seq == 3 && s.storage.unacked == 0)
        })
        .await?;
        let before = c.platform_pem_fetches();
        let detail = c.rotate_platform_certificate()?;
        c.note(detail);
        // Sealed under the certificate the gateway holds; acknowledged under the new one.
        upload_billing(c, "billing_2.csv", 3, c.seed + 1).await?;
        c.wait_all_acknowledged("6 records acknowledged after the rotation", 6)
            .await?;
        c.command(OperatorCommand::Stop)?;
        c.wait_wire("periodic.stop.result OK", WAIT, |e| {
            e.message_type == "periodic.stop.result" && e.code.as_deref() == Some("OK")
        })
        .await?;
        let fetched = c.platform_pem_fetches() - before;
        c.note(format!(
            "platform.pem fetched {fetched} time(s) after the rotation"
        ));
        if fetched != 1 {
            bail!("platform.pem fetched {fetched} times after the rotation, once expected");
        }
        if let Some(a) = c
            .view()
            .anomalies
            .iter()
            .find(|a| a.source == "gateway" && a.kind == AnomalyKind::Security)
        {
            bail!("a security anomaly: {} {}", a.rule, a.detail);
        }
        exactly_once(c, 6)
    })
}

fn pem_case(a: PemAttack) -> Case {
    let (id, description): (&'static str, &'static str) = match a {
        PemAttack::PrivateKeyBlock => (
            "CERT-PEM-PRIVATE-KEY",
            "the certificate endpoint serves `platform.pem` as the platform's certificate \
             followed by a `PRIVATE KEY` block, from the gateway's start on",
        ),
        PemAttack::OverOneMib => (
            "CERT-PEM-OVER-1MIB",
            "the certificate endpoint serves `platform.pem` as over 1 MiB of explanatory text \
             before the platform's certificate, from the gateway's start on",
        ),
    };
    Case {
        id,
        requirements: &["IF-CERT-1", "SEC-CERT-1", "SM-THRESHOLD"],
        rules: &["DES-CERT-2", "DES-CERT-3"],
        level: Level::Must,
        negative: true,
        description,
        expectation: "the gateway fetches `platform.pem`, refuses the response (an `anomaly` of \
                      kind `certificate`) and keeps the certificate it holds: a start is applied \
                      and an upload reaches the platform",
        needs: Needs::OWN,
        run: pem_attack_case,
    }
}

fn pem_attack_case(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let a = attack_of(&PemAttack::ALL, pem_case, &c.case_id)?;
        let fault = FaultConfig {
            platform_pem_attack: Some(a),
            ..FaultConfig::default()
        };
        refused_at_start_fetch(c, fault, None).await?;
        if c.platform_pem_fetches() == 0 {
            bail!("platform.pem was not fetched at start (DES-CERT-3)");
        }
        upload_billing(c, "after.csv", 3, c.seed).await?;
        c.wait_all_acknowledged("3 records at the platform", 3)
            .await?;
        Ok(())
    })
}

/// With `fault` set from the gateway's start: it starts, is started, and reports an `anomaly`
/// of kind `certificate` (what its start-up fetch refused, DES-CERT-3) whose detail names
/// `about`, if given.
async fn refused_at_start_fetch(
    c: &mut Ctx,
    fault: FaultConfig,
    about: Option<&str>,
) -> Result<()> {
    c.faults(fault)?;
    c.started(ProfileFormat::Json).await?;
    c.wait_gateway_anomaly(
        &format!(
            "an anomaly of kind certificate{}",
            about.map(|a| format!(" naming {a}")).unwrap_or_default()
        ),
        AnomalyKind::Certificate,
        |a| about.is_none_or(|x| a.detail.contains(x)),
    )
    .await?;
    Ok(())
}

fn root_swap(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        let fault = FaultConfig {
            foreign_root: true,
            ..FaultConfig::default()
        };
        refused_at_start_fetch(c, fault, Some("root")).await?;
        upload_billing(c, "after_root_swap.csv", 3, c.seed).await?;
        c.wait_view("3 records at the platform", WAIT, |v| v.highest_seq == 3)
            .await?;
        // The root really kept: a new platform certificate (issued under the provisioned root)
        // is learnt and verified (DES-SEAL-6, DES-CERT-4) while the stranger is still served,
        // and the stop it signs is applied. A gateway that had installed the stranger could not
        // verify it.
        stop_under_new_certificate(
            c,
            "periodic.stop.result OK under the new platform certificate",
        )
        .await?;
        Ok(())
    })
}

// ------------------------------------------------------------------ disposal

fn dispose_wipe(c: &mut Ctx) -> CaseFuture<'_> {
    case(async move {
        c.started(ProfileFormat::Json).await?;
        upload_billing(c, "billing_1.csv", 3, c.seed).await?;
        c.wait_view("3 records at the platform", WAIT, |v| v.highest_seq == 3)
            .await?;
        c.stop_gateway().await?;
        let secrets = [
            c.cfg.tls.client_key.path().to_owned(),
            c.cfg.data_protection.key.path().to_owned(),
            c.cfg.masking.keys_dir.path().to_owned(),
            c.cfg.gateway.state_dir.path().to_owned(),
            c.cfg.storage.evacuation_dir.path().to_owned(),
        ];
        for p in &secrets {
            if !p.exists() {
                bail!("{} does not exist before the wipe", p.display());
            }
        }
        if !c.wipe_gateway().await? {
            bail!("this target cannot be disposed of");
        }
        let left: Vec<String> = secrets
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !left.is_empty() {
            bail!("still there after the wipe: {left:?}");
        }
        let refused = match c.start_gateway().await {
            Err(_) => true,
            Ok(()) => {
                let deadline = tokio::time::Instant::now() + WAIT;
                loop {
                    if !c.gateway_running().await {
                        break true;
                    }
                    if tokio::time::Instant::now() > deadline {
                        break false;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let _ = c.stop_gateway().await;
        if !refused {
            bail!("the disposed gateway still runs");
        }
        Ok(())
    })
}
