//! Per-address budgets shared by the nodes on a real PostgreSQL: takes
//! from any node draw on one bucket, refill on the database's clock, and
//! N concurrent takes from many nodes of a bucket of N all pass while the
//! next is refused; addresses and kinds have buckets of their own; full
//! buckets are pruned.

use std::time::Duration;

use hearth_cluster::address_budgets::{AddressBudgets, Budget};
use hearth_cluster::test_servers::{postgres_url, unique};
use sqlx::postgres::PgPoolOptions;

async fn node() -> AddressBudgets {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&postgres_url())
        .await
        .unwrap();
    AddressBudgets::open(pool).await.unwrap()
}

#[tokio::test]
async fn takes_from_every_node_draw_on_one_bucket() {
    let (a, b, c) = (node().await, node().await, node().await);
    // A kind of its own per test run: runs share the database.
    let kind = unique("login");
    let budget = Budget {
        burst: 3,
        per_minute: 1,
    };
    let address = [192, 0, 2, 7];
    a.take(&kind, &address, budget).await.unwrap().unwrap();
    b.take(&kind, &address, budget).await.unwrap().unwrap();
    c.take(&kind, &address, budget).await.unwrap().unwrap();
    let wait = a.take(&kind, &address, budget).await.unwrap().unwrap_err();
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "one token a minute: {wait:?}"
    );
    assert!(b.take(&kind, &address, budget).await.unwrap().is_err());
    // Another address, and another kind, have buckets of their own.
    b.take(&kind, &[192, 0, 2, 8], budget)
        .await
        .unwrap()
        .unwrap();
    let other = unique("register");
    c.take(&other, &address, budget).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_bucket_refills_on_the_databases_clock() {
    let a = node().await;
    let kind = unique("fast");
    // One token every 100 ms.
    let budget = Budget {
        burst: 1,
        per_minute: 600,
    };
    let address = [10, 1, 1, 1];
    a.take(&kind, &address, budget).await.unwrap().unwrap();
    let wait = a.take(&kind, &address, budget).await.unwrap().unwrap_err();
    assert!(wait <= Duration::from_millis(100), "{wait:?}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.take(&kind, &address, budget).await.unwrap().unwrap();
    // Full again after the refill time: pruned (with every other full
    // bucket of any run; at least this one).
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(a.prune().await.unwrap() >= 1);
    a.take(&kind, &address, budget).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takes_over_many_nodes_never_exceed_the_bucket() {
    let nodes = [node().await, node().await, node().await];
    let kind = unique("race");
    let budget = Budget {
        burst: 10,
        per_minute: 1,
    };
    let address = [203, 0, 113, 9];
    let mut takes = Vec::new();
    for n in 0..60 {
        let node = nodes[n % nodes.len()].clone();
        let kind = kind.clone();
        takes.push(tokio::spawn(async move {
            node.take(&kind, &address, budget).await.unwrap().is_ok()
        }));
    }
    let mut passed = 0;
    for take in takes {
        passed += usize::from(take.await.unwrap());
    }
    assert_eq!(passed, 10, "exactly the bucket's tokens passed");
}
