//! The one line every load client ends with, which `bench/run.py` reads:
//! `messages=N seconds=S rate=R p50_us=A p99_us=B`, and ` lost=L` where the client can tell.

/// Prints the line for `messages` completed in `seconds`, with latency percentiles of
/// `samples` (microseconds).
pub fn report(mut samples: Vec<u32>, messages: u64, seconds: f64, lost: Option<u64>) {
    samples.sort_unstable();
    let percentile = |p: f64| samples.get(((samples.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(0);
    let lost = lost.map_or_else(String::new, |lost| format!(" lost={lost}"));
    println!(
        "messages={messages} seconds={seconds:.2} rate={:.0} p50_us={} p99_us={}{lost}",
        messages as f64 / seconds,
        percentile(0.5),
        percentile(0.99)
    );
}
