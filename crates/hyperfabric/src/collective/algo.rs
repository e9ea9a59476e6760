//! The algorithms, as schedules: pure functions from (group size, my rank, element count)
//! to the steps this rank takes. No I/O here; [`super::exec`] runs a schedule.
//!
//! A step lists what this rank sends (element ranges of its buffer, to ranks) and what it
//! receives (ranges, from ranks, reduced into the buffer or copied). Within a step the sends
//! read only data the earlier steps finished; a step never starts before the previous one
//! ended. Every rank numbers the same steps alike, so `(step, chunk, sender)` names a message
//! within one collective. At most one send to and one receive from a given rank per step.

use std::ops::Range;

/// What one message of a step carries: `range` of the buffer, to `peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xfer {
    pub peer: usize,
    pub range: Range<usize>,
    /// Read from the snapshot taken before the collective (all_to_all, in place).
    pub from_snapshot: bool,
}

/// What one message of a step brings: `range` of the buffer, from `peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recv {
    pub peer: usize,
    pub range: Range<usize>,
    /// Reduce into the buffer (else copy over it).
    pub reduce: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub sends: Vec<Xfer>,
    pub recvs: Vec<Recv>,
}

impl Step {
    /// A receive writes where a send of the same step reads: every send must be out (copied
    /// into its message) before the first receive lands.
    pub fn overlaps(&self) -> bool {
        self.recvs.iter().any(|r| {
            self.sends.iter().any(|s| {
                !s.from_snapshot && s.range.start < r.range.end && r.range.start < s.range.end
            })
        })
    }
    fn send(peer: usize, range: Range<usize>) -> Step {
        Step {
            sends: vec![Xfer {
                peer,
                range,
                from_snapshot: false,
            }],
            recvs: vec![],
        }
    }
    fn recv(peer: usize, range: Range<usize>, reduce: bool) -> Step {
        Step {
            sends: vec![],
            recvs: vec![Recv {
                peer,
                range,
                reduce,
            }],
        }
    }
    fn exchange(
        peer_to: usize,
        send: Range<usize>,
        peer_from: usize,
        recv: Range<usize>,
        reduce: bool,
    ) -> Step {
        let mut s = Step::send(peer_to, send);
        s.recvs.push(Recv {
            peer: peer_from,
            range: recv,
            reduce,
        });
        s
    }
}

/// Segment `i` of `count` elements cut into `n` near-equal parts.
pub fn segment(count: usize, n: usize, i: usize) -> Range<usize> {
    let at = |k: usize| ((count as u128 * k as u128) / n as u128) as usize;
    at(i)..at(i + 1)
}

fn block(count: usize, i: usize) -> Range<usize> {
    i * count..(i + 1) * count
}

/// Ring reduce-scatter over the segments `seg(0..n)`: afterwards rank `r` holds segment `r`
/// reduced over all ranks (`n - 1` steps, each reducing what the left neighbour sends).
fn ring_reduce_scatter(n: usize, r: usize, seg: &dyn Fn(usize) -> Range<usize>) -> Vec<Step> {
    let (right, left) = ((r + 1) % n, (r + n - 1) % n);
    (0..n.saturating_sub(1))
        .map(|s| {
            let out = seg((r + 2 * n - s - 1) % n);
            let inn = seg((r + 2 * n - s - 2) % n);
            Step::exchange(right, out, left, inn, true)
        })
        .collect()
}

/// Ring all-gather: rank `r` starts with segment `r` and ends with all of them.
fn ring_all_gather(n: usize, r: usize, seg: &dyn Fn(usize) -> Range<usize>) -> Vec<Step> {
    let (right, left) = ((r + 1) % n, (r + n - 1) % n);
    (0..n.saturating_sub(1))
        .map(|s| {
            let out = seg((r + 2 * n - s) % n);
            let inn = seg((r + 2 * n - s - 1) % n);
            Step::exchange(right, out, left, inn, false)
        })
        .collect()
}

/// Bandwidth-optimal all_reduce: reduce-scatter then all-gather around the ring, `2(n-1)`
/// steps each moving `count / n` elements.
pub fn ring_all_reduce(n: usize, r: usize, count: usize) -> Vec<Step> {
    let seg = |i| segment(count, n, i);
    let mut steps = ring_reduce_scatter(n, r, &seg);
    steps.extend(ring_all_gather(n, r, &seg));
    steps
}

/// Latency-optimal all_reduce: recursive doubling over the largest power of two `p <= n`;
/// the `n - p` extra ranks first fold their vector into a partner and get the result back
/// at the end. `log2(p)` (+2) steps, each moving the whole vector.
pub fn recursive_doubling_all_reduce(n: usize, r: usize, count: usize) -> Vec<Step> {
    let all = 0..count;
    let p = prev_power_of_two(n);
    let rem = n - p;
    let real = |vr: usize| if vr < rem { 2 * vr + 1 } else { vr + rem };
    let mut steps = Vec::new();
    let vrank = if rem > 0 {
        if r < 2 * rem {
            if r.is_multiple_of(2) {
                steps.push(Step::send(r + 1, all.clone()));
                None
            } else {
                steps.push(Step::recv(r - 1, all.clone(), true));
                Some(r / 2)
            }
        } else {
            steps.push(Step::default());
            Some(r - rem)
        }
    } else {
        Some(r)
    };
    let rounds = p.trailing_zeros() as usize;
    for k in 0..rounds {
        match vrank {
            Some(vr) => {
                let partner = real(vr ^ (1 << k));
                steps.push(Step::exchange(
                    partner,
                    all.clone(),
                    partner,
                    all.clone(),
                    true,
                ));
            }
            None => steps.push(Step::default()),
        }
    }
    if rem > 0 {
        steps.push(if r >= 2 * rem {
            Step::default()
        } else if r % 2 == 1 {
            Step::send(r - 1, all.clone())
        } else {
            Step::recv(r + 1, all.clone(), false)
        });
    }
    steps
}

/// Reduce-scatter of `n` blocks of `count`: rank `r` ends with block `r` reduced.
pub fn reduce_scatter(n: usize, r: usize, count: usize) -> Vec<Step> {
    ring_reduce_scatter(n, r, &|i| block(count, i))
}

/// All-gather of `n` blocks of `count` (rank `r` contributes block `r`).
pub fn all_gather(n: usize, r: usize, count: usize) -> Vec<Step> {
    ring_all_gather(n, r, &|i| block(count, i))
}

fn rounds(n: usize) -> usize {
    n.next_power_of_two().trailing_zeros() as usize
}

/// Binomial-tree broadcast from `root`: `ceil(log2 n)` steps.
pub fn broadcast(n: usize, r: usize, root: usize, count: usize) -> Vec<Step> {
    let v = (r + n - root) % n;
    let real = |v: usize| (v + root) % n;
    let l = rounds(n);
    (0..l)
        .map(|j| {
            let mask = 1usize << (l - 1 - j);
            let low = if v == 0 {
                usize::MAX
            } else {
                v & v.wrapping_neg()
            };
            if low == mask {
                Step::recv(real(v - mask), 0..count, false)
            } else if mask < low && v + mask < n {
                Step::send(real(v + mask), 0..count)
            } else {
                Step::default()
            }
        })
        .collect()
}

/// Binomial-tree reduce to `root`: `ceil(log2 n)` steps.
pub fn reduce(n: usize, r: usize, root: usize, count: usize) -> Vec<Step> {
    let v = (r + n - root) % n;
    let real = |v: usize| (v + root) % n;
    let low = if v == 0 {
        usize::MAX
    } else {
        v & v.wrapping_neg()
    };
    (0..rounds(n))
        .map(|k| {
            let mask = 1usize << k;
            if low == mask {
                Step::send(real(v - mask), 0..count)
            } else if mask < low && v + mask < n {
                Step::recv(real(v + mask), 0..count, true)
            } else {
                Step::default()
            }
        })
        .collect()
}

/// Pairwise all_to_all of `n` blocks of `count`: step `s` sends block `r+s` to rank `r+s`
/// (from the snapshot) and receives block `r-s` from rank `r-s`.
pub fn all_to_all(n: usize, r: usize, count: usize) -> Vec<Step> {
    (1..n)
        .map(|s| {
            let to = (r + s) % n;
            let from = (r + n - s) % n;
            Step {
                sends: vec![Xfer {
                    peer: to,
                    range: block(count, to),
                    from_snapshot: true,
                }],
                recvs: vec![Recv {
                    peer: from,
                    range: block(count, from),
                    reduce: false,
                }],
            }
        })
        .collect()
}

/// Dissemination barrier: `ceil(log2 n)` steps of empty messages.
pub fn barrier(n: usize, r: usize) -> Vec<Step> {
    (0..rounds(n))
        .map(|k| {
            Step::exchange(
                (r + (1 << k)) % n,
                0..0,
                (r + n - (1 << k) % n) % n,
                0..0,
                false,
            )
        })
        .collect()
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // rank-indexed checks
mod tests {
    use super::*;

    /// Runs every rank's schedule over plain vectors, step by step (all of a step's sends
    /// are read before any of its receives land), and returns the buffers.
    fn simulate(
        n: usize,
        bufs: Vec<Vec<i64>>,
        schedule: &dyn Fn(usize) -> Vec<Step>,
    ) -> Vec<Vec<i64>> {
        let snap = bufs.clone();
        let mut bufs = bufs;
        let scheds: Vec<Vec<Step>> = (0..n).map(schedule).collect();
        let steps = scheds.iter().map(Vec::len).max().unwrap_or(0);
        assert!(
            scheds.iter().all(|s| s.len() == steps),
            "ranks disagree on the step count"
        );
        for k in 0..steps {
            let mut msgs = Vec::new();
            for (r, s) in scheds.iter().enumerate() {
                for x in &s[k].sends {
                    let src = if x.from_snapshot { &snap[r] } else { &bufs[r] };
                    msgs.push((r, x.peer, src[x.range.clone()].to_vec()));
                }
            }
            for (r, s) in scheds.iter().enumerate() {
                for rv in &s[k].recvs {
                    let i = msgs
                        .iter()
                        .position(|(from, to, _)| *from == rv.peer && *to == r);
                    let (_, _, data) = msgs.swap_remove(i.expect("a matching send"));
                    assert_eq!(data.len(), rv.range.len(), "sizes agree");
                    for (d, v) in bufs[r][rv.range.clone()].iter_mut().zip(data) {
                        *d = if rv.reduce { *d + v } else { v };
                    }
                }
            }
            assert!(msgs.is_empty(), "every send has a receive at step {k}");
        }
        bufs
    }

    fn inputs(n: usize, len: usize) -> Vec<Vec<i64>> {
        (0..n)
            .map(|r| (0..len).map(|i| (r * 1000 + i) as i64).collect())
            .collect()
    }

    #[test]
    fn all_reduce_schedules_sum_for_every_group_size() {
        for n in 1..=9 {
            for count in [0, 1, 3, n, 17, 64] {
                let want: Vec<i64> = (0..count)
                    .map(|i| (0..n).map(|r| (r * 1000 + i) as i64).sum())
                    .collect();
                let ring = simulate(n, inputs(n, count), &|r| ring_all_reduce(n, r, count));
                let rd = simulate(n, inputs(n, count), &|r| {
                    recursive_doubling_all_reduce(n, r, count)
                });
                for r in 0..n {
                    assert_eq!(ring[r], want, "ring n={n} count={count} rank {r}");
                    assert_eq!(rd[r], want, "doubling n={n} count={count} rank {r}");
                }
            }
        }
    }

    #[test]
    fn the_other_schedules_do_what_they_say() {
        for n in 1..=9 {
            let count = 5;
            for root in [0, n / 2, n - 1] {
                let b = simulate(n, inputs(n, count), &|r| broadcast(n, r, root, count));
                let red = simulate(n, inputs(n, count), &|r| reduce(n, r, root, count));
                let want: Vec<i64> = (0..count)
                    .map(|i| (0..n).map(|r| (r * 1000 + i) as i64).sum())
                    .collect();
                assert_eq!(red[root], want, "reduce n={n} root={root}");
                for r in 0..n {
                    assert_eq!(
                        b[r],
                        inputs(n, count)[root],
                        "broadcast n={n} root={root} rank {r}"
                    );
                }
            }
            let len = n * count;
            let rs = simulate(n, inputs(n, len), &|r| reduce_scatter(n, r, count));
            let ag_in: Vec<Vec<i64>> = (0..n)
                .map(|r| {
                    (0..len)
                        .map(|i| if i / count == r { i as i64 } else { -1 })
                        .collect()
                })
                .collect();
            let ag = simulate(n, ag_in, &|r| all_gather(n, r, count));
            let a2a = simulate(n, inputs(n, len), &|r| all_to_all(n, r, count));
            for r in 0..n {
                let want: Vec<i64> = block(count, r)
                    .map(|i| (0..n).map(|q| (q * 1000 + i) as i64).sum())
                    .collect();
                assert_eq!(rs[r][block(count, r)], want[..], "reduce_scatter n={n}");
                assert_eq!(
                    ag[r],
                    (0..len as i64).collect::<Vec<_>>(),
                    "all_gather n={n}"
                );
                for j in 0..n {
                    let sent: Vec<i64> = block(count, r).map(|i| (j * 1000 + i) as i64).collect();
                    assert_eq!(
                        a2a[r][block(count, j)],
                        sent[..],
                        "all_to_all n={n} {j}->{r}"
                    );
                }
            }
            simulate(n, inputs(n, 0), &|r| barrier(n, r));
        }
    }

    #[test]
    fn doubling_exchanges_overlap_and_ring_steps_do_not() {
        assert!(recursive_doubling_all_reduce(4, 0, 8)
            .iter()
            .any(Step::overlaps));
        assert!(!ring_all_reduce(4, 0, 8).iter().any(Step::overlaps));
        assert_eq!(segment(10, 3, 2), 6..10);
        assert_eq!(prev_power_of_two(6), 4);
    }
}
