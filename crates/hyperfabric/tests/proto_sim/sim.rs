//! The simulator of `proto_sim.rs`: one sender and one receiver over two seeded, faulty
//! one-way links in virtual time (see that file's docs for what runs and what is checked).

use hyperfabric::proto::{
    AckInfo, IncomingTransfer, OutgoingTransfer, RecvParams, SendParams, SendState, Verdict,
};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
/// Largest transfer the scenarios use.
pub const TOTAL_MAX: u64 = 2 * MIB;
/// A run needing more events than this is a livelock.
pub const EVENTS_MAX: u64 = 2_000_000;
/// A run lasting longer than this (virtual) is a livelock.
pub const VIRTUAL_TIME_MAX: Duration = Duration::from_secs(3_600);
/// Most chunks the sender may hand out in one pump.
pub const CHUNKS_PER_PUMP_MAX: usize = 4_096;
/// Most frames in flight on both links together.
pub const IN_FLIGHT_MAX: usize = 100_000;
pub const MAX_RANGES: usize = 4_096;

/// Faults of one direction of the link.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkFaults {
    pub drop: f64,
    pub duplicate: f64,
    pub corrupt: f64,
    pub latency: Duration,
    /// Extra uniform delay in `[0, jitter)`: reorders frames.
    pub jitter: Duration,
    /// Chance of a straggler, delayed by up to `STRAGGLE_MAX` on top.
    pub straggle: f64,
}

pub const STRAGGLE_MAX: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct Scenario {
    pub total: u64,
    pub send: SendParams,
    pub recv: RecvParams,
    pub forward: LinkFaults,
    pub back: LinkFaults,
    /// Every frame sent or arriving in `[t1, t2)` is lost.
    pub partition: Option<(Duration, Duration)>,
    /// When the connection breaks (sorted); it is down for `reconnect` each time.
    pub connection_losses: Vec<Duration>,
    pub reconnect: Duration,
    /// The receiving node crashes at `.0` (everything it held in memory is gone, the
    /// connection breaks) and is back after `.1`.
    pub receiver_crash: Option<(Duration, Duration)>,
    /// The receiver stores to disk and journals completed transfers (`DIR/.hf-done`): a
    /// transfer it completed before crashing is still known as done after the restart.
    pub durable_done: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum Msg {
    Data { offset: u64, len: u64, total: u64 },
    Ack(AckInfo),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub events: u64,
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub corrupted: u64,
    pub duplicated: u64,
    pub partitioned: u64,
    pub severed: u64,
    pub timeouts: u64,
    pub crashes: u64,
    /// Completions handed to a receiver process that then crashed (memory delivery).
    pub completions_lost: u64,
}

#[derive(Debug)]
pub struct Outcome {
    pub state: SendState,
    pub end: Duration,
    pub completions: u32,
    pub held: u64,
    pub counters: Counters,
}

pub enum Event {
    Deliver,
    Timeout,
    ConnectionLost,
    ReceiverCrash,
}

pub struct Sim<'a> {
    pub sc: &'a Scenario,
    pub src: &'a [u8],
    pub rng: StdRng,
    pub base: Instant,
    pub now: Duration,
    pub sender: OutgoingTransfer,
    pub rx: IncomingTransfer,
    /// What the receiver stored, and how often it saw the transfer complete.
    pub rx_buf: Vec<u8>,
    pub rx_done: bool,
    pub completions: u32,
    /// Frames in flight, by (arrival time, send order).
    pub wire: BTreeMap<(Duration, u64), Msg>,
    pub seq: u64,
    pub acked_seen: u64,
    pub losses_done: usize,
    pub crashed: bool,
    pub down_until: Duration,
    pub c: Counters,
    pub trace: bool,
}

/// Random bytes the transfers are cut from (non-periodic, so misplaced chunks show).
pub fn source() -> &'static [u8] {
    static SRC: OnceLock<Vec<u8>> = OnceLock::new();
    SRC.get_or_init(|| {
        let mut v = vec![0u8; (TOTAL_MAX + 64 * KIB) as usize];
        StdRng::seed_from_u64(0x5eed).fill_bytes(&mut v);
        v
    })
}

impl<'a> Sim<'a> {
    pub fn new(sc: &'a Scenario, mut rng: StdRng, trace: bool) -> Self {
        let shift = rng.gen_range(0..64 * KIB) as usize;
        let base = Instant::now();
        let rx = IncomingTransfer::new(sc.total, sc.recv).expect("scenario within limits");
        Sim {
            sc,
            src: &source()[shift..shift + sc.total as usize],
            rng,
            base,
            now: Duration::ZERO,
            sender: OutgoingTransfer::new(sc.total, sc.send, base),
            rx,
            rx_buf: vec![0; sc.total as usize],
            rx_done: false,
            completions: 0,
            wire: BTreeMap::new(),
            seq: 0,
            acked_seen: 0,
            losses_done: 0,
            crashed: false,
            down_until: Duration::ZERO,
            c: Counters::default(),
            trace,
        }
    }

    pub fn log(&self, what: impl std::fmt::Display) {
        if self.trace {
            println!("{:>12.3?}  {what}", self.now);
        }
    }

    pub fn run(mut self) -> Result<Outcome, String> {
        self.pump()?;
        while let Some((at, event)) = self.next_event() {
            self.c.events += 1;
            if self.c.events > EVENTS_MAX || at > VIRTUAL_TIME_MAX {
                return Err(format!("livelock: {} events, t={at:?}", self.c.events));
            }
            self.now = self.now.max(at);
            match event {
                Event::Deliver => {
                    let (_, msg) = self.wire.pop_first().expect("peeked");
                    self.deliver(msg)?;
                }
                Event::Timeout => {
                    self.c.timeouts += 1;
                    self.sender.handle_timeout(self.base + self.now);
                    self.log(format_args!("timeout -> {:?}", self.sender.state()));
                }
                Event::ConnectionLost => self.sever(),
                Event::ReceiverCrash => self.crash_receiver()?,
            }
            self.pump()?;
        }
        self.log(format_args!("end: {:?} {:?}", self.sender.state(), self.c));
        Ok(Outcome {
            state: self.sender.state().clone(),
            end: self.now,
            completions: self.completions,
            held: self.rx.held(),
            counters: self.c,
        })
    }

    /// The earliest pending event; `None` once the sender is done and the wire is empty.
    pub fn next_event(&self) -> Option<(Duration, Event)> {
        let mut best = self
            .wire
            .first_key_value()
            .map(|(k, _)| (k.0, Event::Deliver));
        let mut consider = |at: Duration, ev: Event| {
            if best.as_ref().is_none_or(|(b, _)| at < *b) {
                best = Some((at, ev));
            }
        };
        if let Some(t) = self.sender.poll_timeout() {
            consider(t.saturating_duration_since(self.base), Event::Timeout);
        }
        let sending = *self.sender.state() == SendState::Sending;
        if let Some(&t) = self.sc.connection_losses.get(self.losses_done) {
            if sending {
                consider(t, Event::ConnectionLost);
            }
        }
        if let (Some((t, _)), false, true) = (self.sc.receiver_crash, self.crashed, sending) {
            consider(t, Event::ReceiverCrash);
        }
        best
    }

    pub fn sever(&mut self) {
        self.losses_done += 1;
        self.c.severed += self.wire.len() as u64;
        self.wire.clear();
        self.down_until = self.now + self.sc.reconnect;
        self.sender.on_connection_lost();
        self.log(format_args!(
            "connection lost, down until {:?}",
            self.down_until
        ));
    }

    /// The receiver loses its state (held ranges, bytes, the memory that it completed) and
    /// its connection; it answers again once it is back, as a fresh process would.
    pub fn crash_receiver(&mut self) -> Result<(), String> {
        let (_, down_for) = self.sc.receiver_crash.expect("scheduled");
        self.crashed = true;
        self.c.crashes += 1;
        self.sever();
        self.losses_done -= 1; // a crash is not one of the scheduled connection losses
        self.down_until = self.now + down_for;
        if self.sc.durable_done && self.rx_done {
            // The file and its journal record are on disk: nothing to forget.
            self.log("receiver crashed after storing; its journal remembers");
            return Ok(());
        }
        self.rx = IncomingTransfer::new(self.sc.total, self.sc.recv)
            .map_err(|e| format!("restarted receiver refused the transfer: {e}"))?;
        self.rx_buf.fill(0);
        if self.rx_done {
            // Delivered into the memory of the process that died: gone with it.
            self.c.completions_lost += u64::from(self.completions);
            self.completions = 0;
        }
        self.rx_done = false;
        self.log(format_args!(
            "receiver crashed, back at {:?}",
            self.down_until
        ));
        Ok(())
    }

    pub fn partitioned(&self, at: Duration) -> bool {
        self.sc.partition.is_some_and(|(a, b)| a <= at && at < b)
    }

    /// Puts a frame on the link in its direction, through that link's faults.
    pub fn transmit(&mut self, msg: Msg) -> Result<(), String> {
        self.c.sent += 1;
        let f = match msg {
            Msg::Data { .. } => self.sc.forward,
            Msg::Ack(_) => self.sc.back,
        };
        let lost = if self.partitioned(self.now) || self.now < self.down_until {
            self.c.partitioned += 1;
            "partitioned"
        } else if self.rng.gen_bool(f.drop) {
            self.c.dropped += 1;
            "dropped"
        } else if self.rng.gen_bool(f.corrupt) {
            self.c.corrupted += 1;
            "corrupted (CRC)"
        } else {
            ""
        };
        if !lost.is_empty() {
            self.log(format_args!("send {msg:?}: {lost}"));
            return Ok(());
        }
        let copies = if self.rng.gen_bool(f.duplicate) { 2 } else { 1 };
        self.c.duplicated += copies - 1;
        for _ in 0..copies {
            let mut delay = f.latency + f.jitter.mul_f64(self.rng.gen::<f64>());
            if self.rng.gen_bool(f.straggle) {
                delay += STRAGGLE_MAX.mul_f64(self.rng.gen::<f64>());
            }
            self.seq += 1;
            self.log(format_args!("send {msg:?} arrives {:?}", self.now + delay));
            self.wire.insert((self.now + delay, self.seq), msg);
        }
        if self.wire.len() > IN_FLIGHT_MAX {
            return Err(format!("{} frames in flight", self.wire.len()));
        }
        Ok(())
    }

    pub fn deliver(&mut self, msg: Msg) -> Result<(), String> {
        if self.partitioned(self.now) {
            self.c.partitioned += 1;
            self.log(format_args!("arrive {msg:?}: partitioned"));
            return Ok(());
        }
        self.c.delivered += 1;
        self.log(format_args!("arrive {msg:?}"));
        match msg {
            Msg::Data { offset, len, total } => self.receive_data(offset, len, total),
            Msg::Ack(ack) => {
                self.acked_seen = self.acked_seen.max(ack.contiguous.min(self.sc.total));
                self.sender.on_ack(ack, self.base + self.now);
                if *self.sender.state() == SendState::Complete && !self.rx_done {
                    return Err("sender complete before the receiver held every byte".into());
                }
                Ok(())
            }
        }
    }

    /// The receiver's side, as the runtime does it.
    pub fn receive_data(&mut self, offset: u64, len: u64, total: u64) -> Result<(), String> {
        if self.rx_done {
            return self.transmit(Msg::Ack(IncomingTransfer::final_ack(total)));
        }
        match self.rx.on_data(offset, len, total) {
            Err(e) => return Err(format!("receiver refused an honest chunk: {e}")),
            Ok(Verdict::Store { new_bytes }) => {
                if new_bytes > len {
                    return Err(format!("Store of {new_bytes} new bytes from {len}"));
                }
                let (a, b) = (offset as usize, (offset + len) as usize);
                self.rx_buf[a..b].copy_from_slice(&self.src[a..b]);
            }
            Ok(Verdict::Duplicate) => {}
        }
        if self.rx.is_complete() {
            self.rx_done = true;
            self.completions += 1;
            if self.completions > 1 {
                return Err("the receiver delivered the transfer twice (across a crash)".into());
            }
            self.log("receiver complete");
            if let Some(i) = (0..self.src.len()).find(|&i| self.rx_buf[i] != self.src[i]) {
                return Err(format!(
                    "receiver completed with wrong bytes from offset {i}"
                ));
            }
        }
        Ok(())
    }

    /// Hands out every chunk the sender allows now, then any acknowledgement due.
    pub fn pump(&mut self) -> Result<(), String> {
        let window = self.sc.send.window_bytes.max(self.sc.send.chunk_len);
        let mut chunks = 0;
        while let Some(ch) = self.sender.poll_chunk() {
            chunks += 1;
            // Inside the transfer, the chunk size, the window past the last ack, the pump limit.
            let end = ch.offset + ch.len;
            if end > self.sc.total
                || ch.len > self.sc.send.chunk_len
                || end > self.acked_seen + window
                || chunks > CHUNKS_PER_PUMP_MAX
            {
                let acked = self.acked_seen;
                return Err(format!(
                    "chunk #{chunks} {ch:?} out of bounds (acked {acked})"
                ));
            }
            let (offset, len, total) = (ch.offset, ch.len, self.sc.total);
            self.transmit(Msg::Data { offset, len, total })?;
        }
        if let Some(ack) = self.rx.poll_ack(true) {
            if ack.complete != self.rx_done {
                return Err(format!("ack {ack:?} while receiver done={}", self.rx_done));
            }
            self.transmit(Msg::Ack(ack))?;
        }
        Ok(())
    }
}
