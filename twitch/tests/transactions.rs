//! Transactions on Apache Kafka: consume-transform-produce whose output and
//! input offsets commit together, and a `read_committed` reader that never
//! sees an aborted transaction's records, while a `read_uncommitted` one does.

mod common;

use common::{cluster, init_logging, read_to_end, topic, transform, unique};
use twitch::{ErrorKind, Record, TopicPartition};

async fn consume_transform_produce(flavor: &str) {
    init_logging();
    let cluster = cluster();
    let input = topic(&cluster, &format!("txn-in-{flavor}"), 1).await;
    let output = topic(&cluster, &format!("txn-out-{flavor}"), 1).await;
    let group = unique("txn-group");
    let mut w = cluster.get_writer_for_partition(TopicPartition::new(&input, 0)).unwrap();
    for i in 0..15u8 {
        w.produce(Record::new(vec![i])).await.unwrap();
    }
    w.flush_async().await.unwrap();

    let mut reader = cluster.group_reader(&group).topic(&input).transactional().build().unwrap();
    let mut out = cluster.transactional_writer(&output, &unique("txn-id")).await.unwrap();
    transform(&mut reader, &mut out, 10).await;
    out.commit().await.unwrap();
    transform(&mut reader, &mut out, 5).await;
    out.flush().await.unwrap();
    out.abort().await.unwrap();
    reader.shutdown().await.unwrap();

    let doubled = |range: std::ops::Range<u8>| range.map(|i| vec![i * 2]).collect::<Vec<_>>();
    assert_eq!(read_to_end(&cluster, &output, "read_committed").await, doubled(0..10));
    assert_eq!(read_to_end(&cluster, &output, "read_uncommitted").await, doubled(0..15), "aborted records are in the log");
    // The committed transaction carried the input offsets; the aborted one did not.
    let lag = cluster.group_lag(&group, &input).await.unwrap();
    assert_eq!(lag.iter().map(|p| p.lag).sum::<i64>(), 5, "{lag:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn consume_transform_produce_commits_output_and_offsets_together() {
    consume_transform_produce("mt").await;
}

#[tokio::test(flavor = "current_thread")]
async fn consume_transform_produce_on_a_current_thread_runtime() {
    consume_transform_produce("ct").await;
}

/// A second writer with the same transactional id fences the first: the
/// first's transaction can no longer commit, and nothing it wrote is read
/// as committed.
#[tokio::test(flavor = "multi_thread")]
async fn a_newer_writer_with_the_same_id_fences_the_older() {
    init_logging();
    let cluster = cluster();
    let output = topic(&cluster, "txn-fence", 1).await;
    let id = unique("txn-fence-id");
    let mut old = cluster.transactional_writer(&output, &id).await.unwrap();
    old.begin().await.unwrap();
    old.produce(Record::new(b"zombie".to_vec())).await.unwrap();
    old.flush().await.unwrap();

    let mut new = cluster.transactional_writer(&output, &id).await.unwrap();
    new.begin().await.unwrap();
    new.produce(Record::new(b"live".to_vec())).await.unwrap();
    new.commit().await.unwrap();

    let err = old.commit().await.unwrap_err();
    assert!(err.is_fatal() || err.requires_abort(), "the fenced writer's commit: {err:?}");
    assert_eq!(read_to_end(&cluster, &output, "read_committed").await, vec![b"live".to_vec()]);
}

/// Calls that need an open transaction (or none) say so with their own
/// error kind, naming what to call, and leave the writer usable.
#[tokio::test(flavor = "multi_thread")]
async fn calls_in_the_wrong_transaction_state_say_what_to_call() {
    init_logging();
    let cluster = cluster();
    let output = topic(&cluster, "txn-state", 1).await;
    let mut out = cluster.transactional_writer(&output, &unique("txn-state-id")).await.unwrap();
    let needs_begin = [
        ("produce", out.produce(Record::new(b"x".to_vec())).await.unwrap_err()),
        ("send", out.send_keyed(b"k", &1u32).await.unwrap_err()),
        ("flush", out.flush().await.unwrap_err()),
        ("commit", out.commit().await.unwrap_err()),
        ("abort", out.abort().await.unwrap_err()),
    ];
    for (operation, err) in needs_begin {
        assert!(matches!(err.kind(), ErrorKind::TransactionState { operation: op, open: false } if *op == operation), "{err:?}");
        assert_eq!(err.to_string(), format!("cannot {operation}: no transaction is open; call begin() first"));
        assert!(!err.is_fatal() && !err.is_retriable() && !err.requires_abort(), "{operation}: {err:?}");
    }
    out.begin().await.unwrap();
    let err = out.begin().await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::TransactionState { operation: "begin", open: true }), "{err:?}");
    assert_eq!(err.to_string(), "cannot begin: a transaction is already open; call commit() or abort() first");
    // The open transaction is unharmed.
    out.produce(Record::new(b"kept".to_vec())).await.unwrap();
    out.commit().await.unwrap();
    assert_eq!(read_to_end(&cluster, &output, "read_committed").await, vec![b"kept".to_vec()]);
}
