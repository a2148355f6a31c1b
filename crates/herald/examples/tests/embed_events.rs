//! Runs the `embed_events` example's consumer across a restart of Herald: it handles part of
//! the log, stops, more events are committed while it is away, and after the restart it
//! handles exactly the rest, in log order.

use super::*;
use herald_testkit::{Backend, TestDb};

async fn make_events(herald: &Herald, caller: &Principal, names: &[&str]) {
    for name in names {
        herald
            .gateway()
            .create_session(caller, name, None)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_resumes_after_a_restart_without_losing_an_event() {
    let db = TestDb::new(Backend::Sqlite).await;
    let herald::store::Database::Sqlite(file) = db.config().database else {
        unreachable!("a SQLite test database")
    };
    let cursor = &file.with_extension("cursor");
    let caller = Principal::trusted(OrgId::parse("org_events").unwrap(), Capabilities::ALL);
    let stranger = Principal::trusted(OrgId::parse("org_other").unwrap(), Capabilities::ALL);
    let mut handled = Vec::new();

    let first = Herald::builder(db.config()).build().await.unwrap();
    make_events(&first, &caller, &["a", "b", "c"]).await;
    make_events(&first, &stranger, &["not ours"]).await;
    consume(&first, &caller, cursor, Some(2), |e| handled.push(e.id))
        .await
        .unwrap();
    // Committed while the consumer is away, some while Herald is about to stop.
    make_events(&first, &caller, &["d", "e"]).await;
    first.shutdown().await;

    let second = Herald::builder(db.config()).build().await.unwrap();
    make_events(&second, &caller, &["f"]).await;
    let logged: Vec<_> = second
        .gateway()
        .list_events(&caller, None, LogFilter::default(), 200)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert!(logged.len() >= 6, "every session creation is logged");
    let rest = logged.len() - handled.len();
    consume(&second, &caller, cursor, Some(rest), |e| handled.push(e.id))
        .await
        .unwrap();
    assert_eq!(handled, logged, "every event once, in log order");
    second.shutdown().await;
}
