//! The Fluvio adapter's own rules, without a cluster: URLs, offsets,
//! epochs, and topics' retention.

use super::*;

#[test]
fn urls_parse_with_their_settings_and_bad_ones_say_why() {
    assert_eq!(
        FluvioUrl::parse("fluvio://127.0.0.1:9003").unwrap(),
        FluvioUrl {
            addr: "127.0.0.1:9003".into(),
            replication: 1
        }
    );
    assert_eq!(
        FluvioUrl::parse("fluvio://sc.fluvio.svc:9003/?replication=3")
            .unwrap()
            .replication,
        3
    );
    for bad in [
        "redis://x:1",
        "fluvio://",
        "fluvio://host",
        "fluvio://host:port",
        "fluvio://h:1?replication=0",
        "fluvio://h:1?replicas=2",
    ] {
        let e = FluvioUrl::parse(bad).unwrap_err();
        assert!(matches!(e, EngineError::Config(_)), "{bad}: {e}");
    }
}

#[test]
fn a_topics_retention_becomes_the_clusters() {
    use crate::log::Retention;
    use fluvio::metadata::topic::CleanupPolicy;
    let plain = fluvio_topic(&TopicSpec::new("accounts", 4), 1);
    assert_eq!(plain.get_clean_policy(), None);
    assert_eq!(plain.get_storage(), None);
    let spec = TopicSpec::new("events", 4).with_retention(Retention {
        max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        max_bytes: Some(1 << 30),
    });
    let t = fluvio_topic(&spec, 3);
    assert_eq!(t.partitions(), 4);
    let Some(CleanupPolicy::Segment(p)) = t.get_clean_policy() else {
        panic!("no cleanup policy");
    };
    assert_eq!(p.retention_secs(), 7 * 24 * 3600);
    assert_eq!(t.get_storage().unwrap().max_partition_size, Some(1 << 30));
}

#[test]
fn consumer_offsets_map_next_to_consumed() {
    assert_eq!(to_fluvio_consumed(0), None);
    assert_eq!(to_fluvio_consumed(10), Some(9));
    assert_eq!(from_fluvio_consumed(9), 10);
    assert_eq!(from_fluvio_consumed(-1), 0);
    for n in [1u64, 2, 1000, 1 << 40] {
        assert_eq!(from_fluvio_consumed(to_fluvio_consumed(n).unwrap()), n);
    }
}

#[test]
fn epochs_change_with_what_identifies_a_partition() {
    let e = epoch_of("events", 0, 0, "c3");
    assert_eq!(e, epoch_of("events", 0, 0, "c3"));
    assert_ne!(e, epoch_of("events", 1, 0, "c3"));
    assert_ne!(e, epoch_of("events", 0, 5, "c3"));
    assert_ne!(e, epoch_of("inbox", 0, 0, "c3"));
    assert!(e.0 < 1 << 63);
}
