//! Nothing is lost (ST-STORE-1, DES-FTP-6, DES-MSG-DATA-3): the `sgw` binary, run from a
//! provisioned bundle against the platform simulator, is killed with SIGKILL at random points
//! and restarted each time — first while legacy uploads stream in over FTPS (the ingest
//! phase), then while stored records go out over MQTT and acknowledgements come back (the
//! sending phase: each round commits a few files, then the kill lands somewhere in the next
//! 1.5 s of sending). Then, counting by a unique ID written into every row: every upload
//! answered `226` reached the platform, whole; no file reached it in part; no row reached it
//! twice. The seed is printed (`SGW_CRASH_SEED` replays it; `SGW_CRASH_ROUNDS` rounds per
//! phase, default 20).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod sgw_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use sgw_support::World;

const ROWS: usize = 8;

#[test]
fn sigkill_during_ingest_and_during_sending_loses_no_accepted_upload_and_sends_no_row_twice() {
    let rounds: u32 = std::env::var("SGW_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("SGW_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("SGW_CRASH_SEED={seed} SGW_CRASH_ROUNDS={rounds}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let w = Arc::new(World::new("GWCRASH"));

    // Outcomes of every upload: file number → STOR reply code (None: no reply, killed).
    let outcomes: Arc<Mutex<BTreeMap<u64, Option<u16>>>> = Arc::default();
    let mut next_file = 0u64;
    let mut started = false;

    // Phase 1: kills during ingest.
    for round in 0..rounds {
        let mut child = w.spawn_sgw(&[]);
        w.wait_ftp(30);
        if !started {
            w.start_periodic();
            started = true;
        }
        let kill_after = Duration::from_millis(rng.random_range(200..2500));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let uploader = {
            let (outcomes, stop, w) = (outcomes.clone(), stop.clone(), w.clone());
            let first = next_file;
            std::thread::spawn(move || {
                let mut n = first;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let code = w.upload(n, ROWS);
                    outcomes.lock().unwrap().insert(n, code);
                    n += 1;
                }
                n
            })
        };
        std::thread::sleep(kill_after);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        next_file = uploader.join().unwrap();
        println!("ingest round {round}: killed after {kill_after:?}, files so far {next_file}");
    }

    // Phase 2: kills during sending — a few files committed, then the kill while they go out.
    for round in 0..rounds {
        let mut child = w.spawn_sgw(&[]);
        w.wait_ftp(30);
        for _ in 0..rng.random_range(1..4) {
            let code = w.upload(next_file, ROWS);
            outcomes.lock().unwrap().insert(next_file, code);
            next_file += 1;
        }
        let kill_after = Duration::from_millis(rng.random_range(0..1500));
        std::thread::sleep(kill_after);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at_platform = w.ids_at_platform().len();
        println!(
            "sending round {round}: killed {kill_after:?} after the uploads, files so far \
             {next_file}, rows at the platform {at_platform}"
        );
    }

    // A last run drains what is stored.
    let mut child = w.spawn_sgw(&[]);
    w.wait_ftp(30);
    let outcomes = outcomes.lock().unwrap().clone();
    let accepted: BTreeSet<u64> = outcomes
        .iter()
        .filter(|(_, c)| **c == Some(226))
        .map(|(n, _)| *n)
        .collect();
    assert!(
        accepted.len() >= rounds as usize,
        "too few uploads accepted: {outcomes:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let ids = loop {
        let ids = w.ids_at_platform();
        let all = accepted
            .iter()
            .all(|n| (0..ROWS).all(|i| ids.contains_key(&format!("F{n}-{i}"))));
        if all {
            // Let in-flight retransmissions land, then look again.
            std::thread::sleep(Duration::from_secs(3));
            break w.ids_at_platform();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "accepted uploads missing at the platform after the drain (seed {seed}); log {}",
            w.log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    child.kill().unwrap();
    child.wait().unwrap();

    // No row twice; no file in part; every accepted file whole.
    for (id, n) in &ids {
        assert_eq!(
            *n, 1,
            "row {id} reached the platform {n} times (seed {seed})"
        );
    }
    let mut files: BTreeMap<u64, usize> = BTreeMap::new();
    for id in ids.keys() {
        let n: u64 = id[1..].split('-').next().unwrap().parse().unwrap();
        *files.entry(n).or_insert(0) += 1;
    }
    for (n, rows) in &files {
        assert_eq!(
            *rows, ROWS,
            "file {n} reached the platform in part (seed {seed})"
        );
        assert!(outcomes.contains_key(n), "file {n} was never uploaded");
    }
    for n in &accepted {
        assert!(
            files.contains_key(n),
            "accepted file {n} lost (seed {seed})"
        );
    }
    println!(
        "{} uploads, {} answered 226, {} files at the platform ({} committed whose 226 was lost to a kill)",
        outcomes.len(),
        accepted.len(),
        files.len(),
        files.keys().filter(|n| !accepted.contains(n)).count()
    );
}
