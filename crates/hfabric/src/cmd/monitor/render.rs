//! The dashboard: a pure function of [`MonitorState`] drawn with ratatui, so the same code
//! draws the live terminal and an off-screen buffer (`--once`, tests).

use super::state::{MonitorState, NodeView};
use crate::common::{fmt_bytes, fmt_ns};
use ratatui::backend::TestBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table};
use ratatui::{Frame, Terminal};

/// Draws the whole dashboard into `f`.
pub fn draw(f: &mut Frame, s: &MonitorState) {
    let table_rows = s.nodes.len() as u16 + 3;
    let [title, table, links, anomalies] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(table_rows),
        Constraint::Min(4),
        Constraint::Length(s.anomalies.len().clamp(1, 8) as u16 + 2),
    ])
    .areas(f.area());
    let heading = format!(
        " HyperFabric monitor — fabric {} — from {} — every {} ms — round {} — q quits ",
        s.fabric, s.from, s.interval_ms, s.rounds
    );
    f.render_widget(
        Paragraph::new(Line::from(Span::styled(
            heading,
            Style::default().add_modifier(Modifier::BOLD),
        )))
        .block(Block::default().borders(Borders::ALL)),
        title,
    );
    f.render_widget(node_table(s), table);
    draw_links(f, s, links);
    f.render_widget(anomaly_list(s), anomalies);
}

/// Bytes per second as Gbit/s, the unit bench and send report in.
fn fmt_gbit(bytes_per_second: f64) -> String {
    format!("{:.3} Gbit/s", bytes_per_second * 8.0 / 1e9)
}

fn opt<T>(v: Option<T>, show: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".into(), show)
}

fn node_row(n: &NodeView) -> Row<'static> {
    let p = &n.now;
    let totals = n.latest.as_ref().map(|m| &m.totals);
    let state = if n.reachable { "up" } else { "DOWN" };
    let cells = vec![
        n.id.clone(),
        state.into(),
        opt(p.latency_p50_ns, |v| fmt_ns(v as f64)),
        opt(p.latency_p99_ns, |v| fmt_ns(v as f64)),
        format!("{:.2}%", p.loss_percent.max(p.retransmit_percent)),
        fmt_gbit(p.send_bytes_per_second),
        fmt_gbit(p.receive_bytes_per_second),
        opt(totals, |t| fmt_bytes(t.bytes_received)),
        opt(totals, |t| t.transfers_received.to_string()),
        opt(p.cpu_percent, |v| format!("{v:.1}%")),
        opt(p.resident_memory_bytes, fmt_bytes),
        opt(p.memory_percent, |v| format!("{v:.1}%")),
    ];
    let style = if n.reachable {
        Style::default()
    } else {
        Style::default().fg(Color::Red)
    };
    Row::new(cells).style(style)
}

fn node_table(s: &MonitorState) -> Table<'static> {
    let header = [
        "Node", "State", "Lat p50", "Lat p99", "Loss", "Tx", "Rx", "Received", "Xfers", "CPU",
        "RSS", "Mem",
    ];
    let widths = [
        Constraint::Min(10),
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(13),
        Constraint::Length(13),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(6),
    ];
    Table::new(s.nodes.iter().map(node_row), widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::default().borders(Borders::ALL).title(" Nodes "))
}

/// One row per link: its name, a sparkline of its traffic, and the current rate.
fn draw_links(f: &mut Frame, s: &MonitorState, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Links (a↔b: as node a counts them; out / in) ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    if s.links.is_empty() {
        f.render_widget(Paragraph::new("no link traffic seen yet"), inner);
        return;
    }
    for (i, (name, series)) in s.links.iter().enumerate().take(inner.height as usize) {
        let row = Rect::new(inner.x, inner.y + i as u16, inner.width, 1);
        let [label, spark, now] = Layout::horizontal([
            Constraint::Length(28),
            Constraint::Min(10),
            Constraint::Length(32),
        ])
        .areas(row);
        let data: Vec<u64> = series
            .iter()
            .rev()
            .take(spark.width as usize)
            .rev()
            .map(|p| (p.send_bytes_per_second + p.receive_bytes_per_second) as u64)
            .collect();
        let (out, inn) = series.back().map_or((0.0, 0.0), |p| {
            (p.send_bytes_per_second, p.receive_bytes_per_second)
        });
        f.render_widget(Paragraph::new(name.as_str()), label);
        f.render_widget(
            Sparkline::default()
                .data(&data)
                .style(Style::default().fg(Color::Cyan)),
            spark,
        );
        f.render_widget(
            Paragraph::new(format!(" {} / {}", fmt_gbit(out), fmt_gbit(inn))),
            now,
        );
    }
}

fn anomaly_list(s: &MonitorState) -> Paragraph<'static> {
    let lines: Vec<Line> = if s.anomalies.is_empty() {
        vec![Line::from(
            "none: every node within its thresholds and its recent range",
        )]
    } else {
        // One line per distinct message (a node down is said once, not once per round).
        let mut seen = std::collections::BTreeSet::new();
        s.anomalies
            .iter()
            .filter(|a| seen.insert(a.message.clone()))
            .map(|a| {
                Line::from(Span::styled(
                    a.message.clone(),
                    Style::default().fg(Color::Red),
                ))
            })
            .collect()
    };
    Paragraph::new(lines)
        .wrap(ratatui::widgets::Wrap { trim: true })
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Anomalies ([alerts] thresholds and statistical spikes) "),
        )
}

/// The dashboard drawn off screen, as plain text lines (`--once`, tests).
pub fn to_text(s: &MonitorState, width: u16, height: u16) -> std::io::Result<String> {
    let mut term = Terminal::new(TestBackend::new(width, height))?;
    term.draw(|f| draw(f, s))?;
    let buf = term.backend().buffer();
    let mut out = String::with_capacity((width as usize + 1) * height as usize);
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::monitor::state::Observation;
    use hyperfabric::metrics::{LinkMetrics, NodeMetrics};

    fn metrics(node: &str, uptime: f64, sent: u64, cpu_s: f64) -> NodeMetrics {
        let mut m = NodeMetrics {
            node: node.into(),
            uptime_seconds: uptime,
            ..Default::default()
        };
        m.totals.bytes_received = 3 << 20;
        m.totals.transfers_received = 1;
        m.process.cpu_seconds_total = Some(cpu_s);
        m.process.resident_memory_bytes = Some(12 << 20);
        m.process.memory_percent = Some(0.5);
        m.links.push(LinkMetrics {
            peer: "monitor".into(),
            bytes_sent: sent,
            ..Default::default()
        });
        m
    }

    #[test]
    fn the_screen_holds_the_figures_of_a_known_state() {
        let mut s = MonitorState::new(
            "lab",
            "monitor",
            1000,
            &["gpu-1".into(), "gpu-2".into()],
            &Default::default(),
        );
        let obs = |at_ms, m: Result<NodeMetrics, String>| Observation {
            node: m.as_ref().map_or("gpu-2".into(), |m| m.node.clone()),
            at_ms,
            ping_samples: vec![40_000, 50_000, 60_000],
            pings_sent: 3,
            metrics: m,
        };
        s.ingest(vec![
            obs(0, Ok(metrics("gpu-1", 10.0, 0, 1.0))),
            obs(0, Err("connection refused".into())),
        ]);
        // One second later: 2 MiB sent, a quarter of a core busy.
        s.ingest(vec![obs(1000, Ok(metrics("gpu-1", 11.0, 2 << 20, 1.25)))]);
        let text = to_text(&s, 130, 30).expect("off-screen draw");
        assert!(text.contains("fabric lab"), "{text}");
        let row = text
            .lines()
            .find(|l| l.contains("gpu-1"))
            .expect("gpu-1 row");
        for figure in [
            "up",
            "50.00 µs",
            "60.00 µs",
            "0.017 Gbit/s",
            "3.00 MiB",
            "25.0%",
            "12.00 MiB",
        ] {
            assert!(row.contains(figure), "{figure} missing from {row:?}");
        }
        assert!(text.contains("gpu-2") && text.contains("DOWN"), "{text}");
        assert!(
            text.contains("gpu-2: unreachable (connection refused)"),
            "{text}"
        );
        assert!(text.contains("gpu-1↔monitor"), "{text}");
    }
}
