//! The HTML info page: what an operator (or a user wondering about a pending timestamp) reads at
//! a glance. Times in UTC with how long ago; stamping transactions linked to `--explorer-url`;
//! the transaction in flight with its fee rate against `--btc-max-fee`; pending rounds with the
//! age of the oldest; when the next transaction is due; the funding and donation addresses with
//! QR codes; alarms on top. No external resources.
//!
//! The page is a pure function of the calendar's state (the replay tests compare it across
//! restarts, and proxies cache it): times are written as absolute UTC in `<time data-unix>`, and
//! a few lines of inline script add "(5 min ago)" from the reader's clock.
use std::fmt::Write;

use super::info::Info;

/// Renders `info`.
pub fn render(info: &Info) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>OpenTimestamps calendar {uri}</title><style>{STYLE}</style></head><body>\n\
         <h1>OpenTimestamps calendar server</h1>\n<p class=\"uri\"><code>{uri}</code></p>",
        uri = escape(&info.uri)
    );
    banner(&mut h, info);
    mirror(&mut h, info);
    overview(&mut h, info);
    bitcoin(&mut h, info);
    transactions(&mut h, info);
    funding(&mut h, info);
    let _ = writeln!(
        h,
        "<p class=\"foot\">otsd {} (Rust) &middot; network {} &middot; \
         machine-readable: <code>Accept: application/json</code>, \
         <code>/status/&lt;commitment or digest&gt;</code>\
         </p>\n<script>{AGO_SCRIPT}</script>\n</body></html>",
        info.version,
        escape(&info.network),
    );
    h
}

/// Appends "(N ago)" or "(in N)" after every `<time data-unix>`, from the reader's clock.
const AGO_SCRIPT: &str = "function span(s){const u=[[86400,'d'],[3600,'h'],[60,'min'],[1,'s']];\
const p=[];for(const [n,k] of u){if(s>=n||(p.length==0&&n==1)){p.push(Math.floor(s/n)+' '+k);s%=n;}\
if(p.length==2)break;}return p.join(' ');}\
for(const e of document.querySelectorAll('time[data-unix]')){\
const d=Math.round(Date.now()/1000)-Number(e.dataset.unix);\
e.insertAdjacentText('afterend',d>=0?' ('+span(d)+' ago)':' (in '+span(-d)+')');}";

const STYLE: &str = "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}\
th{background:#f4f4f4}code{font-size:.9em;word-break:break-all}.ok{color:#060}.alarm{background:#fdd;\
border:1px solid #c00;padding:.5em}.qr{display:inline-block;margin:.5em 2em .5em 0;text-align:center}\
.foot{color:#777;font-size:.85em;margin-top:2em}.num{white-space:nowrap}";

/// On a mirror: whose, how far behind, and a fork if one was refused.
fn mirror(h: &mut String, info: &Info) {
    let Some(m) = &info.mirror else {
        return;
    };
    let field = |k: &str| m.get(k).map(|v| v.to_string()).unwrap_or_default();
    let _ = writeln!(
        h,
        "<p class=\"mirror\" id=\"mirror\">Read-only mirror of <code>{}</code>: lag {} ms, \
         next seq {}. Submit digests to the primary.</p>",
        escape(m["primary"].as_str().unwrap_or("")),
        escape(&field("lag_ms")),
        escape(&field("next_seq")),
    );
    if let Some(fork) = m.get("fork").filter(|f| !f.is_null()) {
        let _ = writeln!(
            h,
            "<p class=\"alarm\" id=\"fork\">Fork refused: {}</p>",
            escape(&fork.to_string())
        );
    }
}

fn banner(h: &mut String, info: &Info) {
    if !info.stamping.alarms.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"alarm\" id=\"alarms\">Alarm: {}</p>",
            info.stamping.alarms.join(", ")
        );
    }
    if info
        .stamping
        .alarms
        .contains(&super::health::NODE_UNREACHABLE)
    {
        let _ = writeln!(
            h,
            "<p class=\"alarm\" id=\"node-unreachable\">The Bitcoin node cannot be reached \
             ({}): digests are accepted and kept on disk, but not stamped until it answers.</p>",
            escape(
                info.stamping
                    .stamper_error
                    .as_deref()
                    .unwrap_or("no answer")
            )
        );
    }
    match &info.refusal {
        None => h.push_str("<p class=\"ok\" id=\"intake\">Accepting digests.</p>\n"),
        Some(why) => {
            let _ = writeln!(
                h,
                "<p class=\"alarm\" id=\"intake\">Not accepting digests: {}</p>",
                escape(why)
            );
        }
    }
}

fn overview(h: &mut String, info: &Info) {
    let s = &info.stamping;
    let latest = info
        .latest_round
        .as_ref()
        .map_or("none yet".to_owned(), |r| {
            format!(
                "#{} with {} digest{}, sealed {}",
                r.round,
                r.digests,
                if r.digests == 1 { "" } else { "s" },
                when(u64::from(r.time))
            )
        });
    let oldest = s.oldest_pending_time.map_or("none".to_owned(), |t| {
        format!("sealed {}", when(u64::from(t)))
    });
    let anchor = match (s.final_anchor_height, s.best_height) {
        (Some(h), Some(best)) => format!(
            ", its transaction mined in block {h}, {} blocks ago",
            best.saturating_sub(h)
        ),
        _ => String::new(),
    };
    let complete = s.newest_complete_time.map_or("none yet".to_owned(), |t| {
        format!("round sealed {}{anchor}", when(u64::from(t)))
    });
    let next = match (s.stamper_enabled, s.next_tx_at) {
        (false, _) => "never: this calendar does not stamp (no Bitcoin node configured)".to_owned(),
        (true, Some(at)) if at > s.now => when(at),
        (true, _) if s.pending_rounds == 0 => "when a round is pending".to_owned(),
        (true, _) => "now (at the stamper's next look at the node)".to_owned(),
    };
    let _ = writeln!(
        h,
        "<h2>Calendar</h2>\n<table id=\"overview\">\n\
         <tr><th>Digests accepted</th><td>{digests}</td></tr>\n\
         <tr><th>Rounds</th><td>{rounds}</td></tr>\n\
         <tr><th>Latest round</th><td>{latest}</td></tr>\n\
         <tr><th>Queued for the next round</th><td>{queued}</td></tr>\n\
         <tr><th>Pending rounds (in no mined transaction)</th><td id=\"pending\">{pending}</td></tr>\n\
         <tr><th>Oldest pending round</th><td id=\"oldest-pending\">{oldest}</td></tr>\n\
         <tr><th>Newest complete proof</th><td id=\"newest-complete\">{complete}</td></tr>\n\
         <tr><th>Next stamping transaction due</th><td id=\"next-tx\">{next}</td></tr>\n\
         </table>",
        digests = info.digests_total,
        rounds = info.rounds_total,
        queued = info.queued_digests,
        pending = s.pending_rounds,
    );
}

fn bitcoin(h: &mut String, info: &Info) {
    let s = &info.stamping;
    if !s.stamper_enabled {
        return;
    }
    h.push_str("<h2>Bitcoin</h2>\n<table id=\"bitcoin\">\n");
    let height = s
        .best_height
        .map_or("not seen yet".to_owned(), |b| b.to_string());
    let _ = writeln!(h, "<tr><th>Best block</th><td>{height}</td></tr>");
    match &s.in_flight {
        Some(tx) => {
            let share = info
                .max_fee_sat
                .filter(|m| *m > 0)
                .map_or(String::new(), |max| {
                    format!(
                        " &middot; {:.1}% of --btc-max-fee ({} sat)",
                        tx.fee_sat as f64 * 100.0 / max as f64,
                        max
                    )
                });
            let _ = writeln!(
                h,
                "<tr><th>Transaction in flight</th><td id=\"in-flight\">{link} covering rounds {}&ndash;{}, \
                 {} confirmations</td></tr>\n\
                 <tr><th>Its fee</th><td id=\"fee\">{} sat, {:.1} sat/vB{share}</td></tr>",
                tx.first_round,
                tx.last_round,
                tx.confirmations,
                tx.fee_sat,
                tx.feerate_sat_per_vb,
                link = tx_link(info, &tx.txid),
            );
        }
        None => {
            h.push_str("<tr><th>Transaction in flight</th><td id=\"in-flight\">none</td></tr>\n")
        }
    }
    let week = match info.txs_in_last_week {
        Some(n) => format!(
            "{} sat in {n} mined transaction{}",
            info.fees_in_last_week,
            if n == 1 { "" } else { "s" }
        ),
        None => "unknown (the history could not be read)".to_owned(),
    };
    let _ = writeln!(
        h,
        "<tr><th>Fees of the last week</th><td id=\"fees-week\">{week}</td></tr>"
    );
    if let Some(e) = &s.stamper_error {
        let _ = writeln!(
            h,
            "<tr><th>Stamper error</th><td class=\"alarm\">{}</td></tr>",
            escape(e)
        );
    }
    h.push_str("</table>\n");
}

fn transactions(h: &mut String, info: &Info) {
    if info.mined.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Recent stamping transactions</h2>\n<table id=\"transactions\">\n\
         <tr><th>Transaction</th><th>Block</th><th>Confirmations</th><th>Fee</th><th>Fee rate</th>\
         <th>Rounds</th><th>Proofs</th></tr>\n",
    );
    for tx in &info.mined {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{} sat</td>\
             <td class=\"num\">{:.1} sat/vB</td>\
             <td>{}&ndash;{}</td><td>{}</td></tr>",
            tx_link(info, &tx.txid),
            tx.height,
            tx.confirmations,
            super::info::thousands(tx.fee_sat),
            tx.feerate_sat_per_vb,
            tx.first_round,
            tx.last_round,
            if tx.final_ {
                "complete"
            } else {
                "waiting for confirmations"
            }
        );
    }
    h.push_str("</table>\n");
}

fn funding(h: &mut String, info: &Info) {
    h.push_str("<h2>Funding and donations</h2>\n");
    if let Some(addr) = &info.stamper_address {
        let balance = info.stamping.balance_sat.map_or(
            "not known yet (no stamping transaction mined)".to_owned(),
            btc,
        );
        let _ = write!(
            h,
            "<p id=\"funding\">Stamping pays from <code>{a}</code>; \
             its next coin holds {balance}.</p>\n<div class=\"qr\" id=\"funding-qr\">{qr}<br>funding</div>",
            a = escape(addr),
            qr = qr_svg(&format!("bitcoin:{addr}")),
        );
    }
    let _ = writeln!(
        h,
        "<div class=\"qr\" id=\"donation-qr\">{qr}<br>donations</div>\n\
         <p id=\"donation\">Donations: <code>{a}</code></p>",
        a = escape(&info.donation_address),
        qr = qr_svg(&format!("bitcoin:{}", info.donation_address)),
    );
    lightning(h, info);
    if let Some(between) = &info.python.time_between_transactions {
        let _ = writeln!(
            h,
            "<p id=\"between\">Average time between transactions in the last week: {}</p>",
            escape(between)
        );
    }
}

/// `--lightning-invoice-file`: the invoice with its QR code (of the upper-cased invoice, as the
/// Python otsd: QR codes hold upper case more compactly) and a `lightning:` link.
fn lightning(h: &mut String, info: &Info) {
    let Some(invoice) = &info.python.lightning_invoice else {
        return;
    };
    let _ = writeln!(
        h,
        "<div class=\"qr\" id=\"lightning-qr\">{qr}<br>Lightning</div>\n\
         <p id=\"lightning\">You can also donate with Lightning: \
         <a href=\"lightning:{i}\"><code>{i}</code></a></p>",
        i = escape(invoice),
        qr = qr_svg(&invoice.to_uppercase()),
    );
}

fn tx_link(info: &Info, txid: &str) -> String {
    match &info.explorer_url {
        Some(base) => format!(
            "<a href=\"{}/tx/{txid}\"><code>{txid}</code></a>",
            escape(base.trim_end_matches('/'))
        ),
        None => format!("<code>{txid}</code>"),
    }
}

fn btc(sat: u64) -> String {
    format!("{}.{:08} BTC", sat / 100_000_000, sat % 100_000_000)
}

/// `<time data-unix="T">2026-12-02 12:34:56 UTC</time>`; the page's script adds how long ago.
pub fn when(t: u64) -> String {
    format!("<time data-unix=\"{t}\">{}</time>", utc(t))
}

/// A duration in its two largest units: `3 d 4 h`, `5 min 2 s`.
pub fn span(secs: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, name) in units {
        if rest >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{} {name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar).
pub fn utc(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), by the era arithmetic of the Gregorian calendar
/// (400-year eras of 146097 days, years starting in March so the leap day comes last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// An inline SVG QR code of `data` (without the XML declaration, which has no place in HTML).
pub(crate) fn qr_svg(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(160, 160)
                .build();
            match svg.find("<svg") {
                Some(start) => svg[start..].to_owned(),
                None => svg,
            }
        }
        Err(_) => String::new(),
    }
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_and_spans() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(span(0), "0 s");
        assert_eq!(span(59), "59 s");
        assert_eq!(span(3_725), "1 h 2 min");
        assert_eq!(span(2 * 86_400 + 5), "2 d 5 s");
        assert_eq!(
            when(100),
            "<time data-unix=\"100\">1970-01-01 00:01:40 UTC</time>"
        );
    }
}
