//! The automatic rebuild runs inside the router's pod, under its memory limit
//! (deploy/k8s/base/router.yaml): `handoff state rebuild` over the largest log this suite
//! can afford stays within the bound that limit was sized from (docs/operations.md,
//! "Figures": a base plus a share per lead). The log lives in librdkafka's mock cluster:
//! the test broker would take minutes to accept it.

use handoff_e2e::routed_log::{reported_peak_mib, MockLog};
use handoff_e2e::TestEnv;
use tokio::process::Command;

/// Leads in the log (55,000 records): about half a minute of rebuild in a debug build.
const LEADS: u64 = 20_000;
/// What a rebuild holds whatever the log's size (the runtime, librdkafka and its bounded
/// queue, every partition's read-ahead, Redis connections): 37 MiB measured (debug build,
/// 1,000 leads), doubled so that a busier or larger machine does not fail it.
const BASE_MIB: u64 = 74;
/// What it holds per 100,000 leads (the index of the log: 32 bytes a record, 2.75 records
/// a lead, sorted): 13 MiB measured (50 MiB for 100,000 leads), doubled. Before the index,
/// the rebuild held every record: 124 MiB for these 20,000 leads, 479 MiB for 100,000.
const PER_100K_LEADS_MIB: u64 = 26;

#[tokio::test]
async fn a_rebuild_stays_within_the_memory_its_pod_is_sized_for() {
    let env = TestEnv::from_env();
    let log = MockLog::start(&env.redis, 32).unwrap();
    log.publish_routed_leads(usize::try_from(LEADS).unwrap())
        .await
        .unwrap();

    let rebuilt = Command::new(handoff_e2e::handoff_binary())
        .args(["state", "rebuild", "--config"])
        .arg(&log.config_path)
        .env("HANDOFF_LOG_LEVEL", "error")
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&rebuilt.stdout);
    assert!(
        rebuilt.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    assert!(
        report.contains(&format!("leads: {LEADS} recorded")),
        "{report}"
    );
    // The process's own high-water mark of resident memory (VmHWM), read when the rebuild
    // is done: what a pod's memory limit is held against.
    let peak = reported_peak_mib(&report).unwrap_or_else(|| panic!("no peak memory: {report}"));
    let bound = BASE_MIB + PER_100K_LEADS_MIB * LEADS / 100_000;
    assert!(
        peak <= bound,
        "the rebuild of {LEADS} leads peaked at {peak} MiB, above its bound of {bound} MiB \
         (docs/operations.md): {report}"
    );
}
