//! Concurrent streams: N threads, each sending transfers of random sizes (1 KiB – 1 MiB)
//! one after another for T seconds; per-stream and aggregate throughput.

use super::report::{ConcurrentTest, StreamResult};
use super::throughput::payload;
use super::{progress, Args, Target};
use crate::common::{CliError, CliResult};
use hyperfabric::config::ProfileName;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

pub const MIN_BYTES: u64 = 1024;
pub const MAX_BYTES: u64 = 1 << 20;

pub fn run(t: &Target, a: &Args) -> CliResult<ConcurrentTest> {
    let profile = a.profile.unwrap_or(ProfileName::HighThroughput);
    let fabric = t.client(profile)?;
    let data = payload(MAX_BYTES, 1);
    let duration = Duration::from_secs_f64(a.duration);
    let bar = progress(
        a,
        (a.duration * 10.0) as u64,
        &format!("{} concurrent streams", a.streams),
    );
    let start = Instant::now();
    let streams: Vec<CliResult<StreamResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.streams)
            .map(|i| {
                let (fabric, data, to) = (&fabric, &data, t.to.as_str());
                let opts = a.send_options();
                s.spawn(move || -> CliResult<StreamResult> {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
                    let (mut messages, mut bytes) = (0u64, 0u64);
                    let begun = Instant::now();
                    while begun.elapsed() < duration {
                        let len = rng.gen_range(MIN_BYTES..=MAX_BYTES) as usize;
                        fabric.send(to, &data[..len], opts.clone())?;
                        messages += 1;
                        bytes += len as u64;
                    }
                    Ok(StreamResult::new(
                        i,
                        messages,
                        bytes,
                        begun.elapsed().as_secs_f64(),
                    ))
                })
            })
            .collect();
        while start.elapsed() < duration {
            bar.set_position((start.elapsed().as_secs_f64() * 10.0) as u64);
            std::thread::sleep(Duration::from_millis(100));
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CliError::failed("a stream thread panicked")))
            })
            .collect()
    });
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let streams = streams.into_iter().collect::<CliResult<Vec<_>>>()?;
    Ok(ConcurrentTest::new(
        profile,
        super::transport_of(&fabric, &t.to)?,
        (a.compression, a.priority, a.verify_payload),
        a.duration,
        streams,
        seconds,
    ))
}
