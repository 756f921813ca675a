//! Leases on a real PostgreSQL: one holder per line, a lapsed lease goes
//! to the next node at a higher epoch and is never revived, a write made
//! under a lease holds a takeover off until it commits, a frozen holder's
//! write is refused once it has been superseded, and nodes racing for the
//! same lines never hold one at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_cluster::{LeaseError, LeaseState, Leases, NodeId};
use sqlx::Row;

use hearth_cluster::test_servers::{postgres_url, unique};

async fn node(name: &str, lease: Duration) -> Leases {
    Leases::connect(&postgres_url(), NodeId::new(name).unwrap(), lease)
        .await
        .expect("the cluster's database")
}

/// A table of "saves" the tests write under leases.
async fn saves_table(leases: &Leases) {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS cluster_test_saves (
            line TEXT NOT NULL, epoch BIGINT NOT NULL, data TEXT NOT NULL)",
    )
    .execute(leases.pool())
    .await
    .unwrap();
}

async fn saves(leases: &Leases, line: &str) -> Vec<(i64, String)> {
    sqlx::query("SELECT epoch, data FROM cluster_test_saves WHERE line = $1 ORDER BY epoch, data")
        .bind(line)
        .fetch_all(leases.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn save(
    leases: &Leases,
    lease: &hearth_cluster::Lease,
    data: &str,
) -> Result<(), LeaseError> {
    let mut fence = leases.fence(lease).await?;
    sqlx::query("INSERT INTO cluster_test_saves (line, epoch, data) VALUES ($1, $2, $3)")
        .bind(&lease.line)
        .bind(fence.epoch())
        .bind(data)
        .execute(&mut **fence.tx())
        .await
        .map_err(LeaseError::Database)?;
    fence.commit().await
}

#[tokio::test]
async fn a_line_has_one_holder_and_a_lapsed_lease_goes_to_the_next_at_a_higher_epoch() {
    let lease = Duration::from_millis(1_500);
    let (a, b) = (node("a", lease).await, node("b", lease).await);
    saves_table(&a).await;
    let line = unique("square/1");

    let mut held = a.take(&line).await.unwrap().expect("nobody held it");
    assert_eq!(held.epoch, 1);
    assert!(b.take(&line).await.unwrap().is_none(), "a holds it");
    assert!(
        a.take(&line).await.unwrap().is_none(),
        "a take is not a renewal"
    );
    a.renew(&mut held).await.unwrap();
    save(&a, &held, "a1").await.unwrap();
    assert_eq!(
        a.holder(&line).await.unwrap(),
        Some((a.node().to_string(), 1))
    );

    // a stops renewing (cut off, frozen): on the database's clock the lease
    // lapses, and a's renewal does not bring it back even before anyone
    // took it.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    assert_eq!(held.clock.state(Instant::now()), LeaseState::MustStop);
    assert!(matches!(
        a.renew(&mut held).await,
        Err(LeaseError::Stale { epoch: 1, .. })
    ));
    let taken = b.take(&line).await.unwrap().expect("the lease lapsed");
    assert_eq!(taken.epoch, 2);
    // a, resumed, tries to save as the owner: refused by the database.
    assert!(matches!(
        save(&a, &held, "a2").await,
        Err(LeaseError::Stale { epoch: 1, .. })
    ));
    save(&b, &taken, "b1").await.unwrap();
    assert_eq!(
        saves(&a, &line).await,
        vec![(1, "a1".to_owned()), (2, "b1".to_owned())]
    );

    // A release hands the line over at once.
    b.release(&taken).await.unwrap();
    let again = a.take(&line).await.unwrap().expect("released");
    assert_eq!(again.epoch, 3);
    assert!(matches!(
        save(&b, &taken, "b2").await,
        Err(LeaseError::Stale { epoch: 2, .. })
    ));
}

#[tokio::test]
async fn a_write_in_progress_holds_a_takeover_off_until_it_commits() {
    // A 4 s lease: statements and idle transactions are cut at 2 s, lock
    // waits at 1.3 s.
    let lease = Duration::from_millis(4_000);
    let (a, b) = (node("a", lease).await, node("b", lease).await);
    saves_table(&a).await;
    let line = unique("square/2");
    let start = Instant::now();
    let held = a.take(&line).await.unwrap().unwrap();

    // a begins a save just before its lease ends, and commits just after.
    tokio::time::sleep_until((start + Duration::from_millis(3_200)).into()).await;
    let mut fence = a.fence(&held).await.unwrap();
    sqlx::query("INSERT INTO cluster_test_saves (line, epoch, data) VALUES ($1, $2, 'last')")
        .bind(&line)
        .bind(fence.epoch())
        .execute(&mut **fence.tx())
        .await
        .unwrap();
    let takeover = tokio::spawn({
        let (b, line) = (b.clone(), line.clone());
        async move {
            tokio::time::sleep_until((start + Duration::from_millis(4_300)).into()).await;
            let lease = b.take(&line).await.unwrap();
            (lease, Instant::now())
        }
    });
    tokio::time::sleep_until((start + Duration::from_millis(4_600)).into()).await;
    let committed_at = Instant::now();
    fence.commit().await.unwrap();
    let (taken, taken_at) = takeover.await.unwrap();
    let taken = taken.expect("the lease lapsed");
    assert_eq!(taken.epoch, 2);
    assert!(
        taken_at >= committed_at,
        "the takeover waited for the write under the old epoch to commit"
    );
    // Every write of epoch 1 came before epoch 2 began; none after.
    assert!(matches!(
        save(&a, &held, "late").await,
        Err(LeaseError::Stale { .. })
    ));
    assert_eq!(saves(&a, &line).await, vec![(1, "last".to_owned())]);
}

#[tokio::test]
async fn a_holder_frozen_in_the_middle_of_a_write_holds_nobody_off_and_its_write_never_lands() {
    // A 1 s lease: a transaction left idle is aborted after 0.5 s.
    let lease = Duration::from_millis(1_000);
    let (a, b) = (node("a", lease).await, node("b", lease).await);
    saves_table(&a).await;
    let line = unique("square/3");
    let held = a.take(&line).await.unwrap().unwrap();
    let mut fence = a.fence(&held).await.unwrap();
    sqlx::query("INSERT INTO cluster_test_saves (line, epoch, data) VALUES ($1, $2, 'frozen')")
        .bind(&line)
        .bind(fence.epoch())
        .execute(&mut **fence.tx())
        .await
        .unwrap();
    // a freezes (SIGSTOP) with its transaction open, past its lease.
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    let asked = Instant::now();
    let taken = b.take(&line).await.unwrap().expect("the lease lapsed");
    assert_eq!(taken.epoch, 2);
    assert!(
        asked.elapsed() < lease / 2,
        "the frozen holder's open transaction held the takeover off for {:?}",
        asked.elapsed()
    );
    // a wakes and commits: refused, and nothing of it landed.
    assert!(fence.commit().await.is_err(), "the frozen write is refused");
    save(&b, &taken, "b").await.unwrap();
    assert_eq!(saves(&a, &line).await, vec![(2, "b".to_owned())]);
}

/// When one node believed it held a line: from the take's answer to the
/// moment it stopped (its clock said stop, a renewal failed, or it let go).
#[derive(Debug, Clone)]
struct Held {
    node: usize,
    epoch: i64,
    from: Instant,
    until: Instant,
}

#[tokio::test]
async fn nodes_racing_for_the_same_lines_never_hold_one_at_once() {
    const NODES: usize = 6;
    const LINES: usize = 4;
    let lease = Duration::from_millis(400);
    let lines: Vec<String> = (0..LINES).map(|i| unique(&format!("race/{i}"))).collect();
    let log: Arc<Mutex<HashMap<String, Vec<Held>>>> = Arc::default();
    let end = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for index in 0..NODES {
        let leases = node(&format!("n{index}"), lease).await;
        let (lines, log) = (lines.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            // Each node lets go now and then (a drain), and misbehaves in
            // its own way: some freeze for longer than the lease (SIGSTOP,
            // a long pause), some renew at the last moment (a loaded node).
            let mut held: HashMap<String, (hearth_cluster::Lease, Instant)> = HashMap::new();
            let mut round = 0u64;
            while Instant::now() < end {
                round += 1;
                if index % 3 == 1 && round % 9 == 0 {
                    tokio::time::sleep(lease + Duration::from_millis(150)).await;
                }
                for line in &lines {
                    let now = Instant::now();
                    let Some((lease, from)) = held.get_mut(line) else {
                        if let Some(lease) = leases.take(line).await.unwrap() {
                            held.insert(line.clone(), (lease, Instant::now()));
                        }
                        continue;
                    };
                    let record = |until: Instant, lease: &hearth_cluster::Lease, from| {
                        log.lock()
                            .unwrap()
                            .entry(line.clone())
                            .or_default()
                            .push(Held {
                                node: index,
                                epoch: lease.epoch,
                                from,
                                until: until.min(lease.clock.stop_at()),
                            });
                    };
                    let lets_go = round % (13 + index as u64) == 0;
                    let late =
                        index % 3 == 2 && now + Duration::from_millis(40) < lease.clock.stop_at();
                    match lease.clock.state(now) {
                        LeaseState::MustStop => {
                            record(now, lease, *from);
                            held.remove(line);
                        }
                        _ if lets_go => {
                            record(now, lease, *from);
                            leases.release(lease).await.unwrap();
                            held.remove(line);
                        }
                        LeaseState::RenewDue if !late => {
                            let failed = leases.renew(lease).await.is_err();
                            if failed {
                                record(Instant::now(), lease, *from);
                                held.remove(line);
                            }
                        }
                        _ => {}
                    }
                }
                tokio::time::sleep(Duration::from_millis(15 + 5 * index as u64)).await;
            }
            for (line, (lease, from)) in held {
                log.lock().unwrap().entry(line).or_default().push(Held {
                    node: index,
                    epoch: lease.epoch,
                    from,
                    until: Instant::now().min(lease.clock.stop_at()),
                });
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    let mut handovers = 0;
    for line in &lines {
        let mut spans = log.get(line).cloned().unwrap_or_default();
        spans.sort_by_key(|s| s.from);
        assert!(!spans.is_empty(), "{line} was held");
        for pair in spans.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            assert!(
                before.until <= after.from,
                "{line}: node {} held epoch {} until {:?} after node {} took epoch {} at {:?}",
                before.node,
                before.epoch,
                before.until,
                after.node,
                after.epoch,
                after.from
            );
            assert!(before.epoch < after.epoch, "{line}: epochs only grow");
            handovers += 1;
        }
    }
    assert!(
        handovers >= LINES * 3,
        "the lines changed hands often enough to prove something ({handovers})"
    );
    // The database's history agrees: one owner per epoch, epochs 1..n.
    let leases = node("checker", lease).await;
    for line in &lines {
        let epochs: Vec<i64> =
            sqlx::query("SELECT epoch FROM cluster_lease_history WHERE line = $1 ORDER BY epoch")
                .bind(line)
                .fetch_all(leases.pool())
                .await
                .unwrap()
                .into_iter()
                .map(|row| row.get(0))
                .collect();
        assert_eq!(epochs, (1..=epochs.len() as i64).collect::<Vec<_>>());
        assert_eq!(
            epochs.len(),
            log[line].len(),
            "{line}: every take was logged"
        );
    }
}
