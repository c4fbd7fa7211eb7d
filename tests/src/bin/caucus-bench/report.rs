//! Turns what the scenarios measured into `docs/benchmarks.md`: the tables, the ratios
//! against the peers, the targets met and missed, the machine, the versions and the
//! exact command; and `docs/benchmarks.svg`, throughput and p99 against room size.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::fanout::{Comparison, FanoutRow, Plan};
use crate::reconvene::Timings;

const CAUCUS: &str = "Caucus";
const SOCKET_IO: &str = "Socket.IO";
const CEILING: &str = "ceiling";

/// The highest rate a server kept up with in one room and payload.
#[derive(Debug, Clone, Copy)]
struct Sustained {
    /// Deliveries a second; 0 when even the first step failed.
    rate: u64,
    /// What stopped the steps.
    stop: Stop,
}

/// Why a server's steps stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A step failed (twice: each failure is run once more).
    Failed,
    /// The harness's cap was reached while the server kept up.
    Cap,
    /// The load generator could not offer the next step's rate.
    Generator,
}

impl Sustained {
    fn of(rows: &[&FanoutRow], cap: u64) -> Self {
        let rate = rows.iter().filter(|row| row.kept_up()).map(|row| row.offered).max().unwrap_or(0);
        // The steps stop at the first failure, at the cap, or when the generator falls
        // behind: a last step that kept up means the cap stopped them.
        let last = rows.last();
        let stop = if last.is_some_and(|row| row.generator_bound()) {
            Stop::Generator
        } else if rate > 0 && (rate >= cap || last.is_some_and(|row| row.kept_up())) {
            Stop::Cap
        } else {
            Stop::Failed
        };
        Self { rate, stop }
    }

    /// Whether the server was still keeping up when the steps stopped.
    fn bounded_below(self) -> bool {
        self.stop != Stop::Failed
    }

    fn cell(self) -> String {
        match (self.rate, self.stop) {
            (0, Stop::Generator) => "none (load generator behind)".into(),
            (0, _) => "none (first step failed)".into(),
            (rate, Stop::Cap) => format!("≥ {}", thousands(rate)),
            (rate, Stop::Generator) => format!("≥ {} (generator)", thousands(rate)),
            (rate, Stop::Failed) => thousands(rate),
        }
    }
}

/// One room and payload, across the servers.
struct Case<'a> {
    room: usize,
    size: usize,
    rows: Vec<&'a FanoutRow>,
}

impl<'a> Case<'a> {
    fn all(comparison: &'a Comparison, plan: &Plan) -> Vec<Self> {
        let mut cases = Vec::new();
        for &room in &plan.rooms {
            for &size in &plan.sizes {
                let rows =
                    comparison.fanout.iter().filter(|row| row.room == room && row.size == size).collect();
                cases.push(Case { room, size, rows });
            }
        }
        cases
    }

    fn of(&self, server: &str) -> Vec<&'a FanoutRow> {
        self.rows.iter().copied().filter(|row| row.server == server).collect()
    }

    fn sustained(&self, server: &str, cap: u64) -> Option<Sustained> {
        let rows = self.of(server);
        (!rows.is_empty()).then(|| Sustained::of(&rows, cap))
    }

    /// The highest offered rate every server kept up with, or the first step if one
    /// of them kept up with none: the load at which latency and CPU are compared.
    fn common_load(&self, servers: &[&str]) -> Option<u64> {
        let first = self.rows.iter().map(|row| row.offered).min()?;
        let kept = servers
            .iter()
            .map(|server| self.of(server).iter().filter(|row| row.kept_up()).map(|row| row.offered).max())
            .collect::<Option<Vec<_>>>();
        Some(kept.and_then(|rates| rates.into_iter().min()).unwrap_or(first))
    }

    /// The step that counts at `offered`: a step run again counts by its second run.
    fn at(&self, server: &str, offered: u64) -> Option<&'a FanoutRow> {
        self.rows.iter().copied().find(|row| row.server == server && row.offered == offered && !row.run_again)
    }
}

fn servers(comparison: &Comparison) -> Vec<&'static str> {
    let mut servers: Vec<&'static str> = Vec::new();
    for server in
        comparison.fanout.iter().map(|row| row.server).chain(comparison.idle.iter().map(|row| row.server))
    {
        if !servers.contains(&server) {
            servers.push(server);
        }
    }
    servers
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0 && numerator > 0.0).then(|| numerator / denominator)
}

fn times(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |value| format!("{value:.2}×"))
}

/// A target's row: what it asks, what was measured, and whether it was met.
struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

impl Target {
    fn new(what: impl Into<String>, measured: Option<f64>, met: impl Fn(f64) -> bool) -> Self {
        Self { what: what.into(), measured: times(measured), met: measured.map(met) }
    }
}

/// The comparison's sections: idle memory, fan-out, slow consumer, and the targets.
pub(crate) fn comparison(comparison: &Comparison, plan: &Plan, reconvene: Option<&Timings>) -> String {
    let mut out = String::new();
    let servers = servers(comparison);
    let cases = Case::all(comparison, plan);
    let mut targets = Vec::new();

    if !comparison.idle.is_empty() {
        out += "## Idle connections\n\n";
        out += "Connections join rooms of 100 and then do nothing. Memory is the server's resident \
                memory after the connections settle, less before, divided by the connections.\n\n";
        out += "| server | connections | RSS per connection | idle CPU |\n| --- | --- | --- | --- |\n";
        for row in &comparison.idle {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} KiB | {} ms over {} s |",
                row.server,
                thousands(row.connections as u64),
                row.kib_per_connection,
                row.idle_cpu_ms,
                row.seconds
            );
        }
        let largest = comparison.idle.iter().map(|row| row.connections).max().unwrap_or(0);
        let at = |server: &str| {
            comparison
                .idle
                .iter()
                .find(|row| row.server == server && row.connections == largest)
                .map(|row| row.kib_per_connection)
        };
        if let Some(caucus) = at(CAUCUS) {
            let count = thousands(largest as u64);
            let socket_io = at(SOCKET_IO).and_then(|other| ratio(caucus, other));
            let ceiling = at(CEILING).and_then(|other| ratio(caucus, other));
            let _ = writeln!(
                out,
                "\nAt {count} connections Caucus uses {caucus:.1} KiB each: {} Socket.IO's and {} the ceiling's.",
                times(socket_io),
                times(ceiling)
            );
            targets.push(Target::new(
                format!("memory per idle connection ≤ 0.3× Socket.IO's ({count} connections)"),
                socket_io,
                |value| value <= 0.3,
            ));
            targets.push(Target::new(
                format!("memory per idle connection ≤ 1.25× the ceiling's ({count} connections)"),
                ceiling,
                |value| value <= 1.25,
            ));
            targets.push(Target {
                what: format!("memory per idle connection ≤ 16 KiB (asked at 50,000; measured at {count})"),
                measured: format!("{caucus:.1} KiB"),
                met: Some(caucus <= 16.0),
            });
        }
    }

    if !cases.is_empty() {
        out += "\n## Fan-out\n\n";
        let _ = writeln!(
            out,
            "**Highest delivery rate kept up with** (p99 at most 50 ms and nothing lost; \
             deliveries per second; \"≥\" where the harness's cap of {} was reached):\n",
            thousands(plan.max_deliveries)
        );
        out += "| room | payload |";
        for server in &servers {
            let _ = write!(out, " {server} |");
        }
        out += " Caucus ÷ Socket.IO | Caucus ÷ ceiling |\n| --- | --- |";
        out += &" --- |".repeat(servers.len() + 2);
        out += "\n";
        for case in &cases {
            let _ = write!(out, "| {} | {} B |", case.room, case.size);
            for server in &servers {
                let _ = write!(
                    out,
                    " {} |",
                    case.sustained(server, plan.max_deliveries).map_or("n/a".into(), Sustained::cell)
                );
            }
            let caucus = case.sustained(CAUCUS, plan.max_deliveries);
            let versus = |server: &str| {
                let other = case.sustained(server, plan.max_deliveries)?;
                let value = ratio(caucus?.rate as f64, other.rate as f64)?;
                // A server stopped by the cap or the generator could go faster, so the
                // ratio is a bound: a lower one when that is Caucus, an upper one when
                // it is the other server and Caucus failed.
                let bound = match (caucus?.bounded_below(), other.bounded_below()) {
                    (true, false) => "≥ ",
                    (false, true) => "≤ ",
                    _ => "",
                };
                Some((value, format!("{bound}{value:.2}×")))
            };
            let cell = |server| versus(server).map_or("n/a".to_owned(), |(_, text)| text);
            let _ = writeln!(out, " {} | {} |", cell(SOCKET_IO), cell(CEILING));
            let label = format!("room {}, {} B", case.room, case.size);
            if case.room >= 100 {
                let socket_io = versus(SOCKET_IO).map(|(value, _)| value);
                targets.push(Target::new(
                    format!("deliveries/s ≥ 5× Socket.IO (stretch 8×), {label}"),
                    socket_io,
                    |value| value >= 5.0,
                ));
            }
            // Met also when both stopped for the generator or the cap with Caucus at or
            // above the ceiling's rate.
            let ceiling = versus(CEILING).map(|(value, _)| value);
            targets.push(Target::new(
                format!("deliveries/s ≥ 0.8× the ceiling, {label}"),
                ceiling,
                |value| value >= 0.8,
            ));
        }
        out += "\n\"(generator)\": the load generator, on the same cores, could not offer the \
                next step's rate (its last message left more than 20 ms late while it used at \
                least 45% of the machine's CPU), so the server's limit lies above. A publisher \
                that left late while the generator was not that busy was held back by the \
                server, and the step failed. A step that fails is run once more, and only a \
                second failure stops the steps; both runs are in the table of every step.\n";

        out += "\n**At a common load**: the highest rate every server kept up with, or the first \
                step where one of them kept up with none. Latency in milliseconds, CPU in \
                microseconds of the server's user and system time per delivery and per message \
                published.";
        if servers.iter().any(|server| server.contains("+normal")) {
            out += " \"Caucus +normal\" is the same build with `store.synchronous = \"normal\"`: \
                    its commits are not synced to the disk one by one, so the difference between \
                    its rows and Caucus's is what syncing each commit costs, in CPU and in latency.";
        }
        out += "\n\n";
        out += "| room | payload | deliveries/s | server | p50 | p99 | p999 | CPU µs per delivery | CPU µs per message | verdict |\n";
        out += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
        for case in &cases {
            let Some(load) = case.common_load(&servers) else { continue };
            for server in &servers {
                if let Some(row) = case.at(server, load) {
                    let _ = writeln!(
                        out,
                        "| {} | {} B | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
                        case.room,
                        case.size,
                        thousands(load),
                        server,
                        row.p50,
                        row.p99,
                        row.p999,
                        row.cpu_us_per_delivery,
                        row.cpu_us_per_message,
                        row.verdict()
                    );
                }
            }
            let caucus = case.at(CAUCUS, load);
            let label = format!("room {}, {} B, at {} deliveries/s", case.room, case.size, thousands(load));
            let p99 =
                caucus.zip(case.at(SOCKET_IO, load)).and_then(|(ours, theirs)| ratio(ours.p99, theirs.p99));
            targets.push(Target::new(format!("p99 ≤ Socket.IO's, {label}"), p99, |value| value <= 1.0));
            targets
                .push(Target::new(format!("p99 ≤ 0.3× Socket.IO's, {label}"), p99, |value| value <= 0.3));
            let cpu = |server| {
                caucus
                    .zip(case.at(server, load))
                    .and_then(|(ours, theirs)| ratio(ours.cpu_us_per_delivery, theirs.cpu_us_per_delivery))
            };
            if (5..=20).contains(&case.room) {
                targets.push(Target::new(
                    format!("CPU per delivery ≤ 0.6× Socket.IO's, {label}"),
                    cpu(SOCKET_IO),
                    |value| value <= 0.6,
                ));
                targets.push(Target::new(
                    format!("CPU per delivery ≤ 2× the ceiling's, {label}"),
                    cpu(CEILING),
                    |value| value <= 2.0,
                ));
            }
            targets.push(Target::new(
                format!("CPU per delivery ≤ 1.25× the ceiling's, {label}"),
                cpu(CEILING),
                |value| value <= 1.25,
            ));
        }

        out += "\n<details><summary>Every step</summary>\n\n";
        out += "| server | room | payload | deliveries/s offered | delivered | p50 | p99 | p999 | CPU µs per delivery | CPU µs per message | generator cores | verdict |\n";
        out += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
        for row in &comparison.fanout {
            let _ = writeln!(
                out,
                "| {} | {} | {} B | {} | {}/{} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} | {:.1} | {:.2} | {} |",
                row.server,
                row.room,
                row.size,
                thousands(row.offered),
                row.delivered,
                row.expected,
                row.p50,
                row.p99,
                row.p999,
                row.cpu_us_per_delivery,
                row.cpu_us_per_message,
                row.generator_cores,
                row.verdict()
            );
        }
        out += "\n</details>\n";
    }

    if !comparison.light.is_empty() {
        let first = &comparison.light[0];
        let _ = writeln!(
            out,
            "\n## Fixed cost at light load\n\n\
             A room of {} receives {} messages of {} bytes a second, far below any server's \
             limit: the CPU each message costs when nothing is shared with the next one (each \
             wakes the server from idle), and the latency of an unloaded server. For Caucus that \
             includes committing each message before anyone receives it.\n",
            first.room,
            thousands(first.offered / first.room as u64),
            first.size,
        );
        out += "| server | CPU µs per message | CPU µs per delivery | p50 | p99 | delivered |\n";
        out += "| --- | --- | --- | --- | --- | --- |\n";
        for row in &comparison.light {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.2} | {:.2} ms | {:.2} ms | {}/{} |",
                row.server,
                row.cpu_us_per_message,
                row.cpu_us_per_delivery,
                row.p50,
                row.p99,
                row.delivered,
                row.expected
            );
        }
    }

    if !comparison.slow.is_empty() {
        let first = &comparison.slow[0];
        let _ = writeln!(
            out,
            "\n## Slow consumer\n\n\
             A room of {} receives {} messages of {} bytes a second for {} seconds, twice: with \
             everyone reading, then with one member that never reads. The latency is the other \
             members'; the memory is how far the server's grew during each run (sampled every \
             50 ms). Caucus's grows in both runs because it keeps every message in the \
             session's history; the difference between the runs is what the stalled reader \
             costs.\n",
            first.baseline.room,
            thousands(first.baseline.offered / first.baseline.room as u64),
            first.baseline.size,
            first.baseline.expected / first.baseline.offered.max(1),
        );
        out += "| server | others' p99, all reading | others' p99, one stalled | others lost | RSS growth, all reading | RSS growth, one stalled |\n";
        out += "| --- | --- | --- | --- | --- | --- |\n";
        for row in &comparison.slow {
            let _ = writeln!(
                out,
                "| {} | {:.2} ms | {:.2} ms | {} | {} KiB | {} KiB |",
                row.server,
                row.baseline.p99,
                row.stalled.p99,
                row.stalled.expected.saturating_sub(row.stalled.delivered),
                thousands(row.baseline_growth_kib),
                thousands(row.stalled_growth_kib)
            );
        }
    }

    if let Some(timings) = reconvene {
        out += "\n## Reconvene\n\n";
        let _ = writeln!(
            out,
            "A session of {} members, half in each caucus, with {} points written (half in each) \
             before every reconvene. The clock runs from the facilitator sending `reconvene` until \
             a member has `reconvened` and both `feedback` events; then the next round is opened \
             and filled, {} times. Caucus only.\n",
            thousands(timings.members as u64),
            timings.points,
            timings.runs
        );
        out += &timings.table();
        let p99 = timings.last_member.value_at_quantile(0.99) as f64 / 1000.0;
        targets.push(Target {
            what: format!("{}-member reconvene p99 ≤ 20 ms", thousands(timings.members as u64)),
            measured: format!("{p99:.2} ms"),
            met: Some(p99 <= 20.0),
        });
    }

    if !targets.is_empty() {
        let mut head = String::from("## Targets\n\n| target | measured | met |\n| --- | --- | --- |\n");
        for target in &targets {
            let met = match target.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(head, "| {} | {} | {met} |", target.what, target.measured);
        }
        out = head + "\n" + &out;
    }
    out
}

/// Draws sustained throughput and p99 at the common load against room size, one line
/// per server, for the smallest payload.
pub(crate) fn plot(comparison: &Comparison, plan: &Plan, path: &Path) -> Result<()> {
    let Some(&size) = plan.sizes.iter().min() else { return Ok(()) };
    let cases: Vec<Case<'_>> =
        Case::all(comparison, plan).into_iter().filter(|case| case.size == size).collect();
    if cases.is_empty() {
        return Ok(());
    }
    let servers = servers(comparison);
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let labels: Vec<String> = cases.iter().map(|case| case.room.to_string()).collect();
    let x_range = -0.3f64..(cases.len() as f64 - 0.7);

    let rates: Vec<(usize, &str, u64)> = cases
        .iter()
        .enumerate()
        .flat_map(|(index, case)| {
            servers.iter().filter_map(move |server| {
                Some((index, *server, case.sustained(server, plan.max_deliveries)?.rate.max(1)))
            })
        })
        .collect();
    let top = rates.iter().map(|(_, _, rate)| *rate).max().unwrap_or(10).max(10) as f64 * 2.0;
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("Deliveries/s kept up with ({size} B)"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone(), (1_000f64..top).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(cases.len())
        .x_label_formatter(&|x| labels.get(x.round() as usize).cloned().unwrap_or_default())
        .x_desc("room size")
        .y_label_formatter(&|y| thousands(*y as u64))
        .draw()?;
    draw_lines(&mut chart, &servers, |server| {
        rates
            .iter()
            .filter(|(_, name, _)| *name == server)
            .map(|(index, _, rate)| (*index as f64, (*rate).max(1_000) as f64))
            .collect()
    })?;

    let latencies: Vec<(usize, &str, f64)> = cases
        .iter()
        .enumerate()
        .flat_map(|(index, case)| {
            let load = case.common_load(&servers);
            servers.iter().filter_map(move |server| Some((index, *server, case.at(server, load?)?.p99)))
        })
        .collect();
    let top = latencies.iter().map(|(_, _, p99)| *p99).fold(1.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(&right)
        .caption(format!("p99 at the common load, ms ({size} B)"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, (0.1f64..top).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(cases.len())
        .x_label_formatter(&|x| labels.get(x.round() as usize).cloned().unwrap_or_default())
        .x_desc("room size")
        .draw()?;
    draw_lines(&mut chart, &servers, |server| {
        latencies
            .iter()
            .filter(|(_, name, _)| *name == server)
            .map(|(index, _, p99)| (*index as f64, p99.max(0.1)))
            .collect()
    })?;
    root.present()?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

/// One line with dots per server, from `points`, and the legend.
fn draw_lines<'a>(
    chart: &mut Chart<'a, 'a>,
    servers: &[&'static str],
    points: impl Fn(&str) -> Vec<(f64, f64)>,
) -> Result<()> {
    for &server in servers {
        let points = points(server);
        let style = colour(server).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(server)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        chart.draw_series(points.into_iter().map(|point| Circle::new(point, 4, colour(server).filled())))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    Ok(())
}

fn colour(server: &str) -> RGBColor {
    match server {
        CAUCUS => RGBColor(0x1f, 0x6f, 0x5c),
        SOCKET_IO => RGBColor(0xc0, 0x5a, 0x1a),
        _ => RGBColor(0x55, 0x55, 0x88),
    }
}

/// The machine and the versions, as a Markdown list.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| Some(line.strip_prefix("model name")?.split(':').nth(1)?.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".into(), |text| text.trim().to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| info.lines().next()?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or("unknown".into(), |kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0));
    let command_version = |program: &str| {
        std::process::Command::new(program)
            .arg("--version")
            .output()
            .ok()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "not found".into())
    };
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap_or_default();
    let crate_version = |name: &str| {
        let marker = format!("name = \"{name}\"\nversion = \"");
        lock.split(&marker).nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("unknown").to_owned()
    };
    let socket_io = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/peers/socketio/node_modules/socket.io/package.json"
    ))
    .ok()
    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
    .and_then(|json| json["version"].as_str().map(str::to_owned))
    .unwrap_or_else(|| "not installed".into());
    format!(
        "- Machine: {cores} cores ({cpu}), {memory} of memory, Linux {kernel}.\n\
         - Rust: {}; tokio {}, tokio-tungstenite {}, axum {}, rusqlite {}.\n\
         - Node.js: {}; Socket.IO {socket_io}.\n",
        command_version("rustc"),
        crate_version("tokio"),
        crate_version("tokio-tungstenite"),
        crate_version("axum"),
        crate_version("rusqlite"),
        command_version("node"),
    )
}
