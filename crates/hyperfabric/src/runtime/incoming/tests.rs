//! The destination's reassembly table: ended transfers are never opened again, and the
//! memory of ended transfers is bounded per source and lingers.

use super::*;
use crate::config::{ProfileName, Tuning};

#[test]
fn an_ended_transfer_is_never_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let table = IncomingTable::new(
        Sink::Store(dir.path().to_owned()),
        &Tuning::for_profile(ProfileName::HighThroughput),
    );
    let open = |key| table.entry(key, 4, DataType::Custom, Priority::Normal);
    let entry = open((1, 1)).unwrap().unwrap();
    let mut e = entry.lock();
    e.name = Some("x.bin".into());
    assert!(e.proto.on_data(0, 4, 4).is_ok());
    e.write_at(0, b"abcd").unwrap();
    let done = table.complete((1, 1), "a".into(), &mut e).unwrap();
    assert!(matches!(&done, Completed::Stored(p) if p.ends_with("x.bin")));
    assert!(table.outcome((1, 1)).is_none(), "not ended before close");
    // A late frame racing the close finds the same entry (and waits for its lock, then
    // sees it closed) or, after the close, none: never a fresh one.
    std::thread::scope(|s| {
        let late = s.spawn(|| open((1, 1)).unwrap());
        table.close((1, 1), &mut e, Outcome::Delivered(None));
        drop(e);
        if let Some(again) = late.join().unwrap() {
            assert!(Arc::ptr_eq(&entry, &again) && again.lock().closed);
        }
    });
    assert!(matches!(open((1, 1)), Ok(None)), "delivered: FINAL again");
    assert_eq!(std::fs::read(dir.path().join("x.bin")).unwrap(), b"abcd");
    // A refused transfer answers every late frame with its refusal.
    let entry = open((1, 2)).unwrap().unwrap();
    let full = Refusal::new(RefusalCode::StoreFailed, "disk full");
    table.abandon((1, 2), &mut entry.lock(), &full);
    assert_eq!(open((1, 2)).err(), Some(full));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != super::super::journal::JOURNAL_NAME)
        .collect();
    assert_eq!(leftovers, ["x.bin"], "only x.bin (and the journal)");
}

fn table(sink: Sink, per_peer_max: usize, node_max: usize, linger: Duration) -> IncomingTable {
    let tuning = Tuning::for_profile(ProfileName::HighThroughput);
    let limits = EndedLimits {
        per_peer_max,
        node_max,
        linger,
        source_full: SourceFull::ForgetOwnOldest,
    };
    IncomingTable::with_ended_limits(sink, &tuning, limits)
}

/// Opens transfer `key` (4 bytes) and ends it delivered, as the dispatch does; the refusal
/// if it cannot be opened.
fn end_one(table: &IncomingTable, key: TransferKey) -> Result<(), Refusal> {
    let entry = table
        .entry(key, 4, DataType::Custom, Priority::Normal)?
        .expect("a new transfer opens");
    table.close(key, &mut entry.lock(), Outcome::Delivered(None));
    Ok(())
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_flood_of_ids_from_one_source_forgets_only_its_own_never_another_sources_entries() {
    let table = table(Sink::Discard, 4, 16, HOUR);
    end_one(&table, (2, 1)).unwrap();
    for id in 0..1000 {
        end_one(&table, (1, id)).expect("a fast source is served");
    }
    // Source 1 keeps its newest 4; forgetting its own young ones is counted.
    assert!((996..1000).all(|id| table.outcome((1, id)).is_some()));
    assert!(table.outcome((1, 995)).is_none());
    assert_eq!(table.done.lock().forgotten_young(), 1000 - 4);
    // Source 2's ended transfer is still known: a late duplicate is answered, not opened.
    assert_eq!(table.outcome((2, 1)), Some(Outcome::Delivered(None)));
    let dup = table.entry((2, 1), 4, DataType::Custom, Priority::Normal);
    assert!(matches!(dup, Ok(None)), "answered FINAL again");
    end_one(&table, (2, 2)).expect("source 2 keeps its own room");
}

#[test]
fn many_hostile_sources_fill_the_node_bound_and_are_refused_without_eviction() {
    let table = table(Sink::Discard, 4, 8, HOUR);
    end_one(&table, (9, 1)).unwrap();
    for src in 1..=4 {
        for id in 0..10 {
            let _ = end_one(&table, (src, id));
        }
    }
    assert_eq!(table.done.lock().len(), 8, "the node bound");
    assert_eq!(table.outcome((9, 1)), Some(Outcome::Delivered(None)));
    let refusal = end_one(&table, (9, 2)).unwrap_err();
    assert_eq!(refusal.code, RefusalCode::TooManyTransfers);
    // Only source 1 (the first to pass its own bound, 10 ended of 4) forgot its own.
    assert_eq!(table.done.lock().forgotten_young(), 6);
}

#[test]
fn past_the_linger_a_source_forgets_its_own_oldest_for_room() {
    let table = table(Sink::Discard, 4, 16, Duration::ZERO);
    end_one(&table, (2, 1)).unwrap();
    for id in 0..100 {
        end_one(&table, (1, id)).expect("old entries make room");
    }
    assert!(table.outcome((1, 0)).is_none() && table.outcome((1, 99)).is_some());
    assert_eq!(table.outcome((2, 1)), Some(Outcome::Delivered(None)));
}

#[test]
fn a_whole_transfer_is_claimed_only_with_room_to_remember_it() {
    let table = table(Sink::Memory, 16, 2, HOUR);
    assert!(table.claim_whole((1, 1), None) && table.claim_whole((1, 2), None));
    assert!(
        !table.claim_whole((1, 2), None),
        "ended: answered, not claimed"
    );
    assert!(!table.claim_whole((1, 3), None), "no room: not claimed");
    let refusal = end_one(&table, (1, 3)).unwrap_err();
    assert_eq!(refusal.code, RefusalCode::TooManyTransfers);
    assert_eq!(table.done.lock().forgotten_young(), 0);
}
