//! The event formats side by side (`make bench`): for a sample of every
//! event type, the bytes a record takes and the time to write it (from the
//! outbox's JSON, as the relay does) and to read it back into a typed event
//! (as every handler does), in JSON, Protobuf, and the CloudEvents Protobuf
//! format. One process, one run; JSON is the reference of the ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::Parser;
use mart_domain::events::{samples, EncodedEvent, Envelope, Event, EventFormat, EventType};

#[derive(Parser)]
struct Args {
    /// Times every event of every type is written and read per format.
    #[arg(long, default_value_t = 20_000)]
    iterations: u32,
}

/// One format's figures, per event (the mean over the event types).
struct Figures {
    format: EventFormat,
    value_bytes: f64,
    record_bytes: f64,
    write: Duration,
    read: Duration,
}

fn record_bytes(record: &EncodedEvent) -> usize {
    let headers: usize = record.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    headers + record.value.len()
}

/// Mean time of `work` over `iterations` runs for each of `inputs`.
fn per_event<T>(inputs: &[T], iterations: u32, mut work: impl FnMut(&T)) -> Duration {
    for input in inputs {
        work(input); // warm-up
    }
    let started = Instant::now();
    for _ in 0..iterations {
        for input in inputs {
            work(input);
        }
    }
    started.elapsed() / (iterations * inputs.len() as u32)
}

fn measure(format: EventFormat, envelopes: &[Envelope], iterations: u32) -> Figures {
    let records: Vec<EncodedEvent> = envelopes
        .iter()
        .map(|e| e.encode(format).expect("every sample encodes"))
        .collect();
    let count = records.len() as f64;
    let write = per_event(envelopes, iterations, |e| {
        black_box(e.encode(format).unwrap());
    });
    let read = per_event(&records, iterations, |r| {
        black_box(Event::from_record(&r.headers, &r.value).unwrap());
    });
    Figures {
        format,
        value_bytes: records.iter().map(|r| r.value.len()).sum::<usize>() as f64 / count,
        record_bytes: records.iter().map(record_bytes).sum::<usize>() as f64 / count,
        write,
        read,
    }
}

fn percent(part: f64, whole: f64) -> String {
    format!("{:.0} %", 100.0 * part / whole)
}

fn main() {
    let args = Args::parse();
    let envelopes: Vec<Envelope> = EventType::ALL.into_iter().map(samples::envelope).collect();
    let figures: Vec<Figures> = EventFormat::ALL
        .into_iter()
        .map(|f| measure(f, &envelopes, args.iterations))
        .collect();
    let json = &figures[0];
    println!(
        "Event formats: a sample of each of the {} event types, written {} times each per format \
         (one process, one core)",
        envelopes.len(),
        args.iterations
    );
    println!();
    println!("| format | value bytes / event | record bytes / event (value + headers) | of JSON | write µs / event | read µs / event | read time of JSON |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for f in &figures {
        println!(
            "| {} | {:.0} | {:.0} | {} | {:.2} | {:.2} | {} |",
            f.format.content_type(),
            f.value_bytes,
            f.record_bytes,
            percent(f.record_bytes, json.record_bytes),
            f.write.as_secs_f64() * 1e6,
            f.read.as_secs_f64() * 1e6,
            percent(f.read.as_secs_f64(), json.read.as_secs_f64()),
        );
    }
    println!();
    println!("Write: from the outbox's JSON payload (the relay's work); read: record to typed event (every handler's).");
}
