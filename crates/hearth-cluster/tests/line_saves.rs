//! Lines' leases and saves on a real PostgreSQL: a new line takes the
//! lowest number nobody holds and nobody saved; a dead node's line keeps its
//! name until it restarts; saves are fenced by the lease's epoch; a line
//! closed normally frees its name; many nodes opening lines at once never
//! share a name.

use std::collections::BTreeSet;
use std::time::Duration;

use hearth_cluster::{LeaseError, Leases, LineSaves, NodeId};

use hearth_cluster::test_servers::{postgres_url, unique};

async fn node(name: &str, cluster: &str, lease: Duration) -> LineSaves {
    let leases = Leases::connect(&postgres_url(), NodeId::new(name).unwrap(), lease)
        .await
        .expect("the cluster's database");
    LineSaves::open(leases, cluster, "world").await.unwrap()
}

fn number(line: &str) -> u32 {
    line.rsplit('/').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn new_lines_take_the_lowest_free_number_and_a_dead_nodes_saved_line_restarts_once() {
    // a's leases lapse soon; the others' hold for the whole test.
    let lease = Duration::from_millis(1_500);
    let long = Duration::from_secs(60);
    let cluster = unique("c");
    let (a, b) = (
        node("a", &cluster, lease).await,
        node("b", &cluster, long).await,
    );

    // a opens two meadow lines and a town line; b opens the next meadow line.
    let m1 = a.take_new("meadow").await.unwrap().unwrap();
    let m2 = a.take_new("meadow").await.unwrap().unwrap();
    let t1 = a.take_new("town").await.unwrap().unwrap();
    let m3 = b.take_new("meadow").await.unwrap().unwrap();
    assert_eq!(
        [&m1, &m2, &t1, &m3].map(|l| l.line.clone()),
        [
            format!("{cluster}/world/meadow/1"),
            format!("{cluster}/world/meadow/2"),
            format!("{cluster}/world/town/1"),
            format!("{cluster}/world/meadow/3"),
        ]
    );
    assert!(m1.epoch >= 1);

    // a saves meadow 1 and closes meadow 2 (empty): 2 is free again.
    a.store(&m1, "meadow", b"state of meadow 1").await.unwrap();
    a.store(&m2, "meadow", b"state of meadow 2").await.unwrap();
    a.close(&m2).await.unwrap();
    let again = b.take_new("meadow").await.unwrap().unwrap();
    assert_eq!(number(&again.line), 2, "a closed line's number is free");
    assert_eq!(again.epoch, m2.epoch + 1);

    // a dies: its leases lapse. Meadow 1 has a save, so it is an orphan, and
    // a new line does not take its name; town 1 had no save: free.
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let orphans = b
        .orphans(&["meadow".into(), "town".into()], &[])
        .await
        .unwrap();
    assert_eq!(orphans, vec![(m1.line.clone(), "meadow".to_owned())]);
    let fresh = b.take_new("meadow").await.unwrap().unwrap();
    assert_eq!(number(&fresh.line), 4, "meadow 1 waits for its restart");
    let town = b.take_new("town").await.unwrap().unwrap();
    assert_eq!(number(&town.line), 1, "an unsaved dead line frees its name");
    assert_eq!(town.epoch, t1.epoch + 1);

    // Two nodes race to restart meadow 1: one wins, and reads the save.
    let c = node("c", &cluster, long).await;
    let (by_b, by_c) = tokio::join!(b.leases().take(&m1.line), c.leases().take(&m1.line));
    let (winner, restarted) = match (by_b.unwrap(), by_c.unwrap()) {
        (Some(lease), None) => (&b, lease),
        (None, Some(lease)) => (&c, lease),
        other => panic!("one restart, not {other:?}"),
    };
    assert_eq!(restarted.epoch, m1.epoch + 1);
    let saved = winner.load(&restarted).await.unwrap().expect("saved");
    assert_eq!(
        (saved.zone.as_str(), saved.epoch, &saved.state[..]),
        ("meadow", m1.epoch, &b"state of meadow 1"[..])
    );
    assert!(
        winner
            .orphans(&["meadow".into()], &[])
            .await
            .unwrap()
            .is_empty(),
        "held again"
    );

    // a wakes up: its saves are refused, and so is its close.
    assert!(matches!(
        a.store(&m1, "meadow", b"stale").await,
        Err(LeaseError::Stale { .. })
    ));
    assert!(matches!(a.close(&m1).await, Err(LeaseError::Stale { .. })));
    let saved = winner.load(&restarted).await.unwrap().unwrap();
    assert_eq!(
        &saved.state[..],
        b"state of meadow 1",
        "nothing of a's landed"
    );

    // Only the zones a node runs are its orphans' concern.
    winner.leases().release(&restarted).await.unwrap();
    assert!(b.orphans(&["town".into()], &[]).await.unwrap().is_empty());
    assert_eq!(b.orphans(&["meadow".into()], &[]).await.unwrap().len(), 1);
    // A line the caller passes over (it cannot restart it) is not listed.
    assert!(b
        .orphans(&["meadow".into()], std::slice::from_ref(&m1.line))
        .await
        .unwrap()
        .is_empty());

    // A state too large to save is refused before anything is written.
    let huge = vec![0u8; hearth_cluster::line_saves::MAX_LINE_SAVE + 1];
    assert!(matches!(
        b.store(&fresh, "meadow", &huge).await,
        Err(LeaseError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn many_nodes_opening_lines_at_once_never_share_a_name_and_renew_in_one_statement() {
    let lease = Duration::from_millis(3_000);
    let cluster = unique("c");
    let mut nodes = Vec::new();
    for name in ["a", "b", "c", "d"] {
        nodes.push(node(name, &cluster, lease).await);
    }
    let mut opening = Vec::new();
    for saves in &nodes {
        for _ in 0..6 {
            let saves = saves.clone();
            opening.push(tokio::spawn(async move {
                let lease = saves.take_new("square").await.unwrap().expect("a name");
                (saves.leases().node().to_string(), lease)
            }));
        }
    }
    let mut held: Vec<(String, hearth_cluster::Lease)> = Vec::new();
    for task in opening {
        held.push(task.await.unwrap());
    }
    let numbers: BTreeSet<u32> = held.iter().map(|(_, lease)| number(&lease.line)).collect();
    assert_eq!(numbers, (1..=24).collect(), "24 lines, 24 names, no gap");

    // Each node renews all of its leases at once; another node's lease in
    // the list is stale.
    let a = &nodes[0];
    let mut mine: Vec<hearth_cluster::Lease> = held
        .iter()
        .filter(|(node, _)| node == &a.leases().node().to_string())
        .map(|(_, lease)| lease.clone())
        .collect();
    assert_eq!(mine.len(), 6);
    let theirs = held
        .iter()
        .find(|(node, _)| node != &a.leases().node().to_string())
        .map(|(_, lease)| lease.clone())
        .unwrap();
    mine.push(theirs.clone());
    // And a's own lease under an epoch it no longer has.
    let mut old = mine[0].clone();
    old.epoch -= 1;
    mine.push(old.clone());
    let stale = a.leases().renew_many(&mut mine).await.unwrap();
    assert_eq!(
        stale,
        vec![(theirs.line, theirs.epoch), (old.line, old.epoch)]
    );
}

#[tokio::test]
async fn a_line_handed_to_another_node_is_its_at_the_next_epoch_with_the_state_saved() {
    let lease = Duration::from_millis(2_000);
    let cluster = unique("c");
    let (a, b) = (
        node("a", &cluster, lease).await,
        node("b", &cluster, lease).await,
    );
    let line = a.take_new("meadow").await.unwrap().unwrap();
    a.store(&line, "meadow", b"before").await.unwrap();
    let epoch = a
        .hand_to(&line, "meadow", b"as it left", b.leases().node())
        .await
        .unwrap();
    assert_eq!(epoch, line.epoch + 1);
    // a holds it no more: a second hand-over or save is refused.
    assert!(matches!(
        a.hand_to(&line, "meadow", b"again", b.leases().node())
            .await,
        Err(LeaseError::Stale { .. })
    ));
    assert!(matches!(
        a.store(&line, "meadow", b"late").await,
        Err(LeaseError::Stale { .. })
    ));
    // b takes it up and reads what a saved as it left.
    let taken = b.adopt(&line.line, epoch).await.unwrap();
    let saved = b.load(&taken).await.unwrap().unwrap();
    assert_eq!(
        (saved.epoch, &saved.state[..]),
        (line.epoch, &b"as it left"[..])
    );
    // Only the node it was handed to can take it up, at that epoch, and
    // only a line of its own cluster's game.
    assert!(a.adopt(&line.line, epoch).await.is_err());
    assert!(b.adopt(&line.line, epoch + 1).await.is_err());
    assert!(matches!(
        b.adopt("elsewhere/world/meadow/1", 1).await,
        Err(LeaseError::BadLine(_))
    ));
    // Handed but never taken up (the node died): it lapses and is an orphan.
    let c = node("c", &cluster, lease).await;
    let other = a.take_new("meadow").await.unwrap().unwrap();
    a.hand_to(&other, "meadow", b"orphaned", c.leases().node())
        .await
        .unwrap();
    drop(c);
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    // (b's own line, not renewed here, lapsed too: passed over.)
    let orphans = b.orphans(&["meadow".into()], &[taken.line]).await.unwrap();
    assert_eq!(orphans, vec![(other.line.clone(), "meadow".to_owned())]);
}
