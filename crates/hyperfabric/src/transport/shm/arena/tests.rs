use super::*;
use std::time::{Duration, Instant};

fn name(tag: &str) -> String {
    format!("hf-arena-test-{tag}-{}", std::process::id())
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[test]
fn ranks_exchange_many_rounds_through_two_mappings() {
    let n = name("rounds");
    let a = Arena::create(&n, 3, 4096, 0).unwrap();
    let peers: Vec<_> = (1..3)
        .map(|_| Arena::open(&n, 3, 4096, 0).unwrap())
        .collect();
    let run = |arena: &Arena, me: usize| {
        for seq in 1..=200u32 {
            let mine = vec![(me as u8).wrapping_add(seq as u8); (seq as usize * 7) % 4000];
            arena
                .publish(me, seq, &[seq as u64, 0, 0, 0, 0], &mine)
                .unwrap();
            for from in 0..3 {
                let mut out = vec![0u8; mine.len()];
                let desc = arena.read(from, seq, &mut out, soon()).unwrap().unwrap();
                assert_eq!(desc[0], seq as u64);
                assert!(out
                    .iter()
                    .all(|&x| x == (from as u8).wrapping_add(seq as u8)));
            }
        }
    };
    std::thread::scope(|s| {
        for (i, p) in peers.iter().enumerate() {
            s.spawn(move || run(p, i + 1));
        }
        run(&a, 0);
    });
}

#[test]
fn a_silent_peer_is_a_timeout_and_bad_layouts_are_refused() {
    let n = name("silent");
    let a = Arena::create(&n, 2, 64, 0).unwrap();
    let mut out = [0u8; 8];
    let t = Instant::now() + Duration::from_millis(20);
    assert!(matches!(
        a.read(1, 1, &mut out, t),
        Err(ArenaError::Timeout { rank: 1, .. })
    ));
    assert!(matches!(
        Arena::open(&n, 3, 64, 0),
        Err(ArenaError::Layout(_))
    ));
    assert!(Arena::create(&name("odd"), 2, 65, 0).is_err());
    assert!(a.publish(0, 1, &[0; 5], &[0u8; 65]).is_err());
    assert!(a.block(2).is_err());
}

#[test]
fn a_scribbled_region_is_malformed_and_a_length_mismatch_returns_the_descriptor() {
    let n = name("crc");
    let a = Arena::create(&n, 2, 64, 0).unwrap();
    a.publish(1, 1, &[7, 0, 0, 0, 0], &[1u8; 16]).unwrap();
    let mut short = [0u8; 8];
    assert_eq!(
        a.read(1, 1, &mut short, soon()).unwrap(),
        Err([7, 0, 0, 0, 0])
    );
    a.block(1).unwrap().slot[1]
        .crc
        .fetch_xor(1, Ordering::Relaxed);
    let mut out = [0u8; 16];
    assert!(matches!(
        a.read(1, 1, &mut out, soon()),
        Err(ArenaError::Malformed { rank: 1, .. })
    ));
    a.block(1).unwrap().slot[1]
        .seq
        .value
        .store(9, Ordering::Release);
    assert!(matches!(
        a.read(1, 1, &mut out, soon()),
        Err(ArenaError::Malformed { .. })
    ));
    // Round 2 lives in the other half: round 1's bytes there stay untouched.
    a.publish(1, 2, &[8, 0, 0, 0, 0], &[2u8; 16]).unwrap();
    assert_eq!(a.read(1, 2, &mut out, soon()).unwrap(), Ok([8, 0, 0, 0, 0]));
    assert_eq!(out, [2u8; 16]);
}

#[test]
fn stage_chunks_pass_through_two_mappings_and_offsets_stay_inside_a_half() {
    let n = name("stage");
    let a = Arena::create(&n, 2, 64, 4096).unwrap();
    let b = Arena::open(&n, 2, 64, 4096).unwrap();
    assert_eq!(a.stage_half_bytes(), 2048);
    for c in 1..=5u32 {
        a.stage_wait_free(0, c, soon()).unwrap();
        a.stage_put(0, c, 100, &[c as u8; 50]).unwrap();
        a.stage_publish_raw(0, c, &[c as u64, 0, 0, 0, 0], &[0, 77])
            .unwrap();
        let (desc, crc) = b.stage_wait_raw(0, c, 1, soon()).unwrap();
        assert_eq!((desc[0], crc), (c as u64, 77));
        let mut out = [0u8; 50];
        b.stage_get(0, c, 100, &mut out).unwrap();
        assert!(out.iter().all(|&x| x == c as u8));
        a.stage_publish_reduced(0, c, 9).unwrap();
        assert_eq!(b.stage_wait_reduced(0, c, soon()).unwrap(), 9);
        b.stage_finish(1, c).unwrap();
    }
    assert!(a.stage_put(0, 1, 2040, &[0u8; 9]).is_err());
    assert!(a.stage_get(1, 1, usize::MAX, &mut [0u8; 2]).is_err());
    assert!(a.stage_get(2, 1, 0, &mut [0u8; 2]).is_err());
    assert!(Arena::create(&name("odd-stage"), 2, 64, 100).is_err());
    assert!(matches!(
        Arena::open(&n, 2, 64, 0),
        Err(ArenaError::Layout(_))
    ));
}

#[test]
fn stage_words_too_far_ahead_are_malformed_and_silence_is_a_timeout() {
    let n = name("stage-bad");
    let a = Arena::create(&n, 2, 64, 4096).unwrap();
    let t = || Instant::now() + Duration::from_millis(20);
    assert!(matches!(
        a.stage_wait_raw(1, 1, 0, t()),
        Err(ArenaError::Timeout { rank: 1, .. })
    ));
    assert!(matches!(
        a.stage_wait_reduced(1, 1, t()),
        Err(ArenaError::Timeout { rank: 1, .. })
    ));
    a.block(1).unwrap().raw.word.set(3);
    assert!(matches!(
        a.stage_wait_raw(1, 1, 0, t()),
        Err(ArenaError::Malformed { rank: 1, .. })
    ));
    a.block(1).unwrap().reduced.word.set(2);
    assert!(matches!(
        a.stage_wait_reduced(1, 1, t()),
        Err(ArenaError::Malformed { .. })
    ));
    a.block(1).unwrap().read.word.set(1);
    assert!(matches!(
        a.stage_wait_free(0, 1, t()),
        Err(ArenaError::Malformed { .. })
    ));
    assert!(a.stage_wait_raw(1, 2, 5, t()).is_err());
}
