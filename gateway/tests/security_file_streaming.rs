//! Streaming of file protection (SEC-FILE-*): a multi-MiB file goes through sign/verify and
//! encrypt/decrypt with bounded reads and writes, and the process's peak memory does not grow
//! by anything near the file size. One test per binary so the peak is not shared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod security_common;

use std::io::{Read, Seek, SeekFrom, Write};

use gateway::security::AesCbc;
use security_common::*;

const SIZE: u64 = 16 << 20;
const MAX_CALL: usize = 256 << 10;

/// Generates CSV-like text on the fly (compressible ~4x, far below the bomb ratio).
struct Source {
    left: u64,
    line: u64,
    pending: Vec<u8>,
    hasher: openssl::sha::Sha256,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        assert!(buf.len() <= MAX_CALL, "read buffer of {} bytes", buf.len());
        if self.left == 0 {
            return Ok(0);
        }
        while self.pending.len() < buf.len() {
            self.line += 1;
            let l = self.line;
            let x = l.wrapping_mul(6364136223846793005).rotate_left(17);
            self.pending.extend_from_slice(
                format!(
                    "{l},M-{:05},{}.{:02},{x:x}\n",
                    l % 9973,
                    x % 10_000,
                    l % 100
                )
                .as_bytes(),
            );
        }
        let n = buf.len().min(self.left as usize);
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hashes what it receives and keeps nothing.
struct Sink {
    hasher: openssl::sha::Sha256,
    n: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        assert!(buf.len() <= MAX_CALL, "write of {} bytes", buf.len());
        self.hasher.update(buf);
        self.n += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap()
}

fn source() -> Source {
    Source {
        left: SIZE,
        line: 0,
        pending: Vec::new(),
        hasher: openssl::sha::Sha256::new(),
    }
}

#[test]
fn a_multi_mebibyte_file_is_signed_verified_encrypted_and_decrypted_in_bounded_memory() {
    let gw = gateway_ds();
    let pf = platform_ds();
    let before = peak_rss_kib();

    let mut src = source();
    let mut zip = gw
        .sign_file("big.csv", &mut src, tempfile::tempfile().unwrap())
        .unwrap();
    let want = src.hasher.finish();
    assert!(
        zip.seek(SeekFrom::End(0)).unwrap() < SIZE / 2,
        "payload is deflated"
    );
    zip.seek(SeekFrom::Start(0)).unwrap();
    let mut sink = Sink {
        hasher: openssl::sha::Sha256::new(),
        n: 0,
    };
    let info = pf
        .verify_file("GW0001", &mut zip, &mut sink, now())
        .unwrap();
    assert_eq!((info.size, sink.n), (SIZE, SIZE));
    assert_eq!(sink.hasher.finish(), want);

    let mut src = source();
    let mut zip = gw
        .encrypt_file(
            "platform",
            AesCbc::Aes256,
            "big.csv",
            &mut src,
            tempfile::tempfile().unwrap(),
            now(),
        )
        .unwrap();
    zip.seek(SeekFrom::Start(0)).unwrap();
    let mut sink = Sink {
        hasher: openssl::sha::Sha256::new(),
        n: 0,
    };
    pf.decrypt_file(&mut zip, &mut sink).unwrap();
    assert_eq!(sink.n, SIZE);
    assert_eq!(sink.hasher.finish(), want);

    let grown = peak_rss_kib().saturating_sub(before);
    assert!(
        grown < (SIZE / 1024) / 3,
        "peak RSS grew by {grown} KiB for a {} KiB file",
        SIZE / 1024
    );
}
