//! Deliberately broken behaviours, for the conformance suite's own proof that its cases fail
//! wrong gateways (docs/conformance.md, "Broken variants"). Compiled in only with the cargo
//! feature `broken-variants`, which nothing but the conformance crate's tests enables — never a
//! release build of `sgw`. A gateway is broken by a file `BROKEN` in its bundle naming one
//! variant; without the feature the file is ignored and [`Broken::is`] is always false.

use std::path::Path;

/// One way of being wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Variant {
    /// SM-TLS, DES-FTP-2: plain FTP logins allowed.
    PlainFtpAllowed,
    /// SEC-MASK-1: the second masked column is stored and sent in clear.
    MaskSecondColumnInClear,
    /// SC-STOP-1, DES-FTP-6: uploads accepted while storing is stopped.
    AcceptWhileStopped,
    /// DES-FTP-6: content errors answered 451 (retry) instead of 551.
    ContentRefused451,
    /// DES-FTP-6: no `max_file_bytes` limit.
    OversizeAccepted,
    /// IF-CERT-1: certificates and CRL never fetched.
    NoCertFetch,
    /// DES-SEAL-6: a message signed under an unknown `kid` is refused without fetching
    /// `platform.pem` (a rotated platform certificate is never learnt).
    NoKidRefetch,
    /// SEC-CERT-2, DES-CERT-4 step 5: a certificate's validity period is not checked (an
    /// expired `platform.pem` is installed and its signatures accepted).
    ExpiredCertAccepted,
    /// SEC-CERT-2, DES-CERT-4 step 6: the CRL is not consulted (a revoked `platform.pem` is
    /// installed and its signatures accepted).
    RevokedCertAccepted,
    /// ST-STORE-1, DES-FTP-6: an upload is answered `226` at once and stored two seconds
    /// later (a kill -9 in between loses a file reported stored). Its records and seqs are
    /// not known when it answers: its `ftp.upload` audit entry says 0 records, seqs 1-1
    /// (the reply text is libunftp's fixed one; no case reads either).
    AckBeforeDurable,
    /// DES-CERT-3: a `root.pem` that differs from the provisioned root is installed (the
    /// anomaly is still reported): later certificates are verified against the stranger.
    ForeignRootInstalled,
    /// DES-FTP-6, DES-MSG-MON-1: `quota_bytes` is ignored (uploads are never refused 452 and
    /// the storage alarm is never raised).
    QuotaIgnored,
    /// DES-ID-4: the seq counter is derived at start from the records still stored, and
    /// acknowledged records are forgotten: after a restart seqs are assigned again.
    SeqReusedAfterRestart,
    /// DES-CERT-8: what cannot be sealed for want of a valid platform certificate is dropped
    /// (no anomaly kept, no refresh).
    UnsealableReportsDropped,
    /// DES-CERT-8 (2): the CRL and `platform.pem` fetched again at every message that cannot
    /// be sealed, not at most once per 5 minutes (the platform's endpoint flooded).
    UnsealableRefetchFlood,
    /// IF-DISC-1: no `disconnect` at shutdown.
    NoDisconnect,
    /// IF-PSTOP-1: `periodic.stop` ignored.
    IgnoreStop,
    /// IF-PSTART-2: refused (forged) commands neither reported nor answered, silently dropped.
    SilentOnForged,
    /// DES-MSG-DATA-3: unacknowledged data never sent again.
    NeverRetransmit,
    /// DES-MSG-CONN-3, MON-1: no `monitor.status`.
    NoStatus,
    /// IF-RESEND-1: `resend.request` ignored.
    ResendIgnored,
    /// DES-FTP-5: the second copy of a file refused as a duplicate.
    DuplicateRefused,
    /// DES-EVAC-5: archives not read back before `resend.result`: a damaged archive is
    /// promised as OK and its data message given up afterwards.
    ArchiveLossUnreported,
    /// ST-EVAC-1, DES-EVAC-1: evacuation takes unacknowledged and in-flight records too.
    EvacuateUnacked,
    /// DES-ENV-7: a command's timestamp is not checked (stale commands acted on).
    StaleAccepted,
    /// DES-ENV-8: the reply memory is bypassed for `periodic.start`: a replayed start is
    /// applied again.
    ReplayApplied,
    /// DES-ID-2: the boot count is not advanced, so message IDs repeat after a restart.
    BootCountReused,
    /// SEC-CERT-3, DES-PROV-1: starts although a private key is readable by others.
    KeyPermsIgnored,
    /// IF-PSTART-4, DES-MSG-PS-1: a start naming an unprovisioned dataset is applied to the others (OK).
    UnknownDatasetAccepted,
    /// MON-1, DES-MSG-MON-1: `monitor.status` reports no accepted files.
    StatusLies,
    /// MON-2, DES-MSG-MON-2: only every third `monitor.status` is sent.
    SlowStatus,
    /// IF-RESEND-1, DES-MSG-RS-1: resend data one seq off the requested range.
    WrongResendRange,
    /// IF-PSTART-2, DES-SEAL-5: a command that decrypts is acted on without a signature.
    UnsignedCommandAccepted,
    /// SEC-JSON-SIG-1, DES-PROF-4: JSON data profiles encrypted but not signed.
    UnsignedData,
    /// SEC-MASK-1, SEC-MASK-2: masking with a key that is not the utility's.
    MaskWrongKey,
    /// SM-DEFAULTPW: a factory account admin/admin (billing's directory).
    DefaultFtpAccount,
    /// DES-MSG-RS-3: resend data released all at once, whatever the in-flight window (a
    /// flood after an outage).
    ResendFlood,
    /// DES-FTP-6, DES-MSG-AN-1: a refused upload is answered but not reported as an anomaly.
    SilentIngestRefusal,
    /// MON-1, DES-MSG-MON-1: `monitor.status` lists no certificate expiries.
    StatusWithoutCertificates,
    /// DES-MQTT-8, DES-MSG-CONN-3: after a retryable `connect` refusal the next `connect`
    /// goes out at once, without the back-off (the platform flooded after an outage).
    ConnectRetryAtOnce,
    /// DES-MQTT-8: the `connect` back-off count never resets, however long a session lasted
    /// (a gateway after a day's session waits as if its last refusal were minutes ago).
    BackoffNeverResets,
    /// DES-MQTT-8 (a): a lost or failed MQTT connection is retried after 50 ms, without the
    /// back-off (the broker flooded while it restarts).
    ReconnectAtOnce,
    /// DES-MQTT-8 (a): the count of failed MQTT connections never resets, however long a
    /// session lasted.
    ReconnectBackoffNeverResets,
    /// DES-MSG-DATA-5 (a): an unacknowledged data message is sent again for ever (every
    /// `8 × ackTimeoutSec`), never given up: its records are never held or reported.
    NeverGivesUp,
    /// ST-STORE-1, DES-MSG-DATA-3: what is sent but not yet acknowledged is kept in memory
    /// only: at a restart (after a kill -9) the unacknowledged records are forgotten, and a
    /// resend of them is answered NOT_FOUND.
    UnackedForgottenAtRestart,
    /// DES-CERT-3: a fetched CRL that is valid but not newer than the held one (a stale cache
    /// or an attacker serving an older CRL) is installed: rollback protection off.
    CrlRollbackAccepted,
    /// DES-CERT-3: when a fetch of the CRL fails (the endpoint unreachable) the held CRL is
    /// forgotten: every certificate check then fails (no CRL held), nothing can be sealed or
    /// verified until the endpoint is back.
    CrlDroppedOnFetchFailure,
    /// DES-MSG-RS-2: a resend request answered BUSY (another resend still running) is served
    /// all the same, its records sent after the running one's (the platform was told nothing
    /// would come).
    BusyResendServed,
    /// DES-CERT-3: a fetched CRL that is not newer than the held one is reported as an anomaly
    /// and installed all the same (the refusal only logged).
    CrlRollbackReportedInstalled,
    /// DES-MSG-MON-1: the figures of `monitor.status` collected every 30 s (the status itself
    /// still sent every `monitorIntervalSec`): a change shows up to 30 s late.
    StatusFiguresStale,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 50] = [
        Variant::PlainFtpAllowed,
        Variant::MaskSecondColumnInClear,
        Variant::AcceptWhileStopped,
        Variant::ContentRefused451,
        Variant::OversizeAccepted,
        Variant::NoCertFetch,
        Variant::NoDisconnect,
        Variant::IgnoreStop,
        Variant::SilentOnForged,
        Variant::NeverRetransmit,
        Variant::NoStatus,
        Variant::ResendIgnored,
        Variant::DuplicateRefused,
        Variant::ArchiveLossUnreported,
        Variant::EvacuateUnacked,
        Variant::StaleAccepted,
        Variant::ReplayApplied,
        Variant::BootCountReused,
        Variant::KeyPermsIgnored,
        Variant::UnknownDatasetAccepted,
        Variant::StatusLies,
        Variant::SlowStatus,
        Variant::WrongResendRange,
        Variant::UnsignedCommandAccepted,
        Variant::UnsignedData,
        Variant::MaskWrongKey,
        Variant::DefaultFtpAccount,
        Variant::ResendFlood,
        Variant::SilentIngestRefusal,
        Variant::StatusWithoutCertificates,
        Variant::NoKidRefetch,
        Variant::ExpiredCertAccepted,
        Variant::RevokedCertAccepted,
        Variant::AckBeforeDurable,
        Variant::QuotaIgnored,
        Variant::ForeignRootInstalled,
        Variant::SeqReusedAfterRestart,
        Variant::UnsealableReportsDropped,
        Variant::UnsealableRefetchFlood,
        Variant::ConnectRetryAtOnce,
        Variant::BackoffNeverResets,
        Variant::ReconnectAtOnce,
        Variant::ReconnectBackoffNeverResets,
        Variant::NeverGivesUp,
        Variant::UnackedForgottenAtRestart,
        Variant::CrlRollbackAccepted,
        Variant::CrlDroppedOnFetchFailure,
        Variant::BusyResendServed,
        Variant::CrlRollbackReportedInstalled,
        Variant::StatusFiguresStale,
    ];

    /// The name written in `BROKEN`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::PlainFtpAllowed => "plain-ftp-allowed",
            Variant::MaskSecondColumnInClear => "mask-second-column-in-clear",
            Variant::AcceptWhileStopped => "accept-while-stopped",
            Variant::ContentRefused451 => "content-refused-451",
            Variant::OversizeAccepted => "oversize-accepted",
            Variant::NoCertFetch => "no-cert-fetch",
            Variant::NoDisconnect => "no-disconnect",
            Variant::IgnoreStop => "ignore-stop",
            Variant::SilentOnForged => "silent-on-forged",
            Variant::NeverRetransmit => "never-retransmit",
            Variant::NoStatus => "no-status",
            Variant::ResendIgnored => "resend-ignored",
            Variant::DuplicateRefused => "duplicate-refused",
            Variant::ArchiveLossUnreported => "archive-loss-unreported",
            Variant::EvacuateUnacked => "evacuate-unacked",
            Variant::StaleAccepted => "stale-accepted",
            Variant::ReplayApplied => "replay-applied",
            Variant::BootCountReused => "boot-count-reused",
            Variant::KeyPermsIgnored => "key-perms-ignored",
            Variant::UnknownDatasetAccepted => "unknown-dataset-accepted",
            Variant::StatusLies => "status-lies",
            Variant::SlowStatus => "slow-status",
            Variant::WrongResendRange => "wrong-resend-range",
            Variant::UnsignedCommandAccepted => "unsigned-command-accepted",
            Variant::UnsignedData => "unsigned-data",
            Variant::MaskWrongKey => "mask-wrong-key",
            Variant::DefaultFtpAccount => "default-ftp-account",
            Variant::ResendFlood => "resend-flood",
            Variant::SilentIngestRefusal => "silent-ingest-refusal",
            Variant::StatusWithoutCertificates => "status-without-certificates",
            Variant::NoKidRefetch => "no-kid-refetch",
            Variant::ExpiredCertAccepted => "expired-cert-accepted",
            Variant::RevokedCertAccepted => "revoked-cert-accepted",
            Variant::AckBeforeDurable => "ack-before-durable",
            Variant::QuotaIgnored => "quota-ignored",
            Variant::ForeignRootInstalled => "foreign-root-installed",
            Variant::SeqReusedAfterRestart => "seq-reused-after-restart",
            Variant::UnsealableReportsDropped => "unsealable-reports-dropped",
            Variant::UnsealableRefetchFlood => "unsealable-refetch-flood",
            Variant::ConnectRetryAtOnce => "connect-retry-at-once",
            Variant::BackoffNeverResets => "backoff-never-resets",
            Variant::ReconnectAtOnce => "reconnect-at-once",
            Variant::ReconnectBackoffNeverResets => "reconnect-backoff-never-resets",
            Variant::NeverGivesUp => "never-gives-up",
            Variant::UnackedForgottenAtRestart => "unacked-forgotten-at-restart",
            Variant::CrlRollbackAccepted => "crl-rollback-accepted",
            Variant::CrlDroppedOnFetchFailure => "crl-dropped-on-fetch-failure",
            Variant::BusyResendServed => "busy-resend-served",
            Variant::CrlRollbackReportedInstalled => "crl-rollback-reported-installed",
            Variant::StatusFiguresStale => "status-figures-stale",
        }
    }
}

/// The variant a gateway runs with, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Broken(Option<Variant>);

impl Broken {
    /// Reads `{bundle}/BROKEN` (with the `broken-variants` feature only).
    pub fn from_bundle(bundle: &Path) -> Broken {
        #[cfg(feature = "broken-variants")]
        {
            if let Ok(s) = std::fs::read_to_string(bundle.join("BROKEN")) {
                let v = Variant::ALL.into_iter().find(|v| v.name() == s.trim());
                if let Some(v) = v {
                    tracing::warn!(
                        variant = v.name(),
                        "BROKEN VARIANT: this gateway is deliberately wrong"
                    );
                }
                return Broken(v);
            }
        }
        let _ = bundle;
        Broken(None)
    }

    /// Whether the gateway runs broken as `v`.
    pub fn is(self, v: Variant) -> bool {
        self.0 == Some(v)
    }
}
