//! `husk-bench`: the measuring tool that runs inside the lab's guests.
//!
//! ```text
//! husk-bench latency RUNS NAME=COMMAND... [-- baseline COMMAND]
//! husk-bench rss COMMAND...
//! ```
//!
//! `latency` runs each named command RUNS times, interleaved (one of each per
//! round, so drift in the guest hits every runtime alike), and prints the median,
//! minimum and maximum wall time of each, and every median's ratio to the first
//! command's and to the `baseline` command's. A command is one shell-free
//! argument string split on spaces; `{i}` in it is replaced by the round number,
//! so each run can use a fresh container id. A command that fails stops the
//! benchmark with its exit status and stderr.
//!
//! `rss` runs one command and prints the peak resident set size of it and of
//! the descendants it waited for (`getrusage(RUSAGE_CHILDREN)`), in KiB.
//!
//! Results are printed as aligned text and, on the last line, as one JSON
//! object prefixed `BENCH-JSON `, for the lab to collect.

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("latency") => latency(&args[1..]),
        Some("rss") => rss(&args[1..]),
        _ => Err(
            "usage: husk-bench latency RUNS NAME=COMMAND... [-- baseline COMMAND] \
                  | husk-bench rss COMMAND..."
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("husk-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Subject {
    name: String,
    command: String,
    times: Vec<Duration>,
}

fn latency(args: &[String]) -> Result<(), String> {
    let runs: usize = args
        .first()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .ok_or("latency: RUNS must be a positive number")?;
    let mut subjects = Vec::new();
    let mut rest = args[1..].iter();
    for arg in rest.by_ref() {
        if arg == "--" {
            break;
        }
        let (name, command) = arg
            .split_once('=')
            .ok_or_else(|| format!("latency: {arg:?} is not NAME=COMMAND"))?;
        subjects.push(Subject {
            name: name.to_owned(),
            command: command.to_owned(),
            times: Vec::with_capacity(runs),
        });
    }
    match (rest.next().map(String::as_str), rest.next()) {
        (Some("baseline"), Some(command)) => subjects.push(Subject {
            name: "baseline".to_owned(),
            command: command.clone(),
            times: Vec::with_capacity(runs),
        }),
        (None, _) => {}
        _ => return Err("latency: after -- comes: baseline COMMAND".to_owned()),
    }
    if subjects.is_empty() {
        return Err("latency: no NAME=COMMAND given".to_owned());
    }
    for round in 0..runs {
        for subject in &mut subjects {
            let command = subject.command.replace("{i}", &round.to_string());
            subject.times.push(time_once(&subject.name, &command)?);
        }
    }
    report(&subjects, runs);
    Ok(())
}

fn time_once(name: &str, command: &str) -> Result<Duration, String> {
    let mut words = command.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| format!("{name}: empty command"))?;
    let started = Instant::now();
    let out = Command::new(program)
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{name}: {program}: {e}"))?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{name}: `{command}` failed ({}): {}",
            out.status,
            stderr.trim()
        ));
    }
    Ok(elapsed)
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(subjects: &[Subject], runs: usize) {
    let first = median(&subjects[0].times);
    let baseline = subjects
        .iter()
        .find(|s| s.name == "baseline")
        .map(|s| median(&s.times));
    println!(
        "{:<10} {:>5} {:>10} {:>9} {:>9} {:>10} {:>12}",
        "runtime",
        "runs",
        "median ms",
        "min ms",
        "max ms",
        format!("x {}", subjects[0].name),
        "x baseline"
    );
    let mut json = Vec::new();
    for s in subjects {
        let m = median(&s.times);
        let min = s.times.iter().min().copied().unwrap_or_default();
        let max = s.times.iter().max().copied().unwrap_or_default();
        let vs_first = ms(m) / ms(first);
        let vs_base = baseline.map(|b| ms(m) / ms(b));
        println!(
            "{:<10} {:>5} {:>10.2} {:>9.2} {:>9.2} {:>10.2} {:>12}",
            s.name,
            runs,
            ms(m),
            ms(min),
            ms(max),
            vs_first,
            vs_base.map_or("-".to_owned(), |r| format!("{r:.1}"))
        );
        json.push(format!(
            "{{\"name\":\"{}\",\"runs\":{runs},\"median_ms\":{:.3},\"min_ms\":{:.3},\"max_ms\":{:.3}}}",
            s.name,
            ms(m),
            ms(min),
            ms(max)
        ));
    }
    println!("BENCH-JSON {{\"latency\":[{}]}}", json.join(","));
}

fn rss(args: &[String]) -> Result<(), String> {
    let (program, rest) = args.split_first().ok_or("rss: no command given")?;
    let status = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("rss: {program}: {e}"))?;
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map_err(|e| format!("rss: getrusage: {e}"))?;
    let kib = usage.max_rss();
    println!("peak RSS of `{}`: {kib} KiB ({status})", args.join(" "));
    println!(
        "BENCH-JSON {{\"rss_kib\":{kib},\"success\":{}}}",
        status.success()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("rss: `{}` failed ({status})", args.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        assert_eq!(median(&ms(&[5, 1, 3])), Duration::from_millis(3));
        assert_eq!(median(&ms(&[4, 1, 3, 2])), Duration::from_micros(2500));
    }

    #[test]
    fn a_failing_command_is_reported_with_its_stderr() {
        let err = time_once("sh", "sh -c false").unwrap_err();
        assert!(err.starts_with("sh: `sh -c false` failed"), "{err}");
    }
}
