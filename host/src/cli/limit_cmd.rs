//! `jobhost limit list|set|remove`: flow control at run time.

use clap::{Args, Subcommand};

use super::client::{segment, Client, ClientArgs};
use super::jobs_cmd::{print_json, run};
use super::{EXIT_OK, EXIT_USAGE};
use crate::server::types::{LimitRequest, LimitView, RateView};

#[derive(Debug, Subcommand)]
pub enum LimitCommand {
    /// List the limits.
    List(super::jobs_cmd::ClientOnly),
    /// Set the limit on a queue or a factory (replacing any).
    Set(SetArgs),
    /// Remove the limit on a queue or a factory.
    Remove(ScopeArgs),
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// `queue` or `factory`.
    pub kind: String,
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// `queue` or `factory`.
    pub kind: String,
    pub name: String,
    /// Jobs running at once, on every host sharing the store.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Jobs with one limit key running at once.
    #[arg(long, value_name = "N")]
    pub per_key: Option<u32>,
    /// Starts per interval, e.g. `100/1s`, `5/1m` (spread evenly).
    #[arg(long, value_name = "N/DURATION", value_parser = parse_rate)]
    pub rate: Option<(u32, f64)>,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_rate(text: &str) -> Result<(u32, f64), String> {
    let (n, per) = text.split_once('/').ok_or_else(|| format!("`{text}`: give N/DURATION, e.g. 100/1s"))?;
    let n: u32 = n.trim().parse().map_err(|_| format!("`{n}`: a number of starts"))?;
    let per = crate::durations::parse_duration(per.trim())?;
    Ok((n, per.as_secs_f64()))
}

pub fn limit(command: &LimitCommand) -> u8 {
    match command {
        LimitCommand::List(args) => run(|| {
            let limits: Vec<LimitView> = Client::new(&args.client).get("/v1/limits", &[])?;
            if args.client.json {
                print_json(&limits);
            } else if limits.is_empty() {
                println!("no limits");
            } else {
                for l in &limits {
                    println!("{}", describe(l));
                }
            }
            Ok(EXIT_OK)
        }),
        LimitCommand::Set(args) => {
            if args.concurrency.is_none() && args.per_key.is_none() && args.rate.is_none() {
                eprintln!("error: give --concurrency, --per-key or --rate");
                return EXIT_USAGE;
            }
            run(|| {
                let body = LimitRequest {
                    concurrency: args.concurrency,
                    per_key: args.per_key,
                    rate: args.rate.map(|(starts, per_seconds)| RateView { starts, per_seconds }),
                };
                let path = format!("/v1/limits/{}/{}", segment(&args.kind), segment(&args.name));
                let set: LimitView = Client::new(&args.client).put(&path, &body)?;
                if args.client.json {
                    print_json(&set);
                } else {
                    println!("{}", describe(&set));
                }
                Ok(EXIT_OK)
            })
        }
        LimitCommand::Remove(args) => run(|| {
            let path = format!("/v1/limits/{}/{}", segment(&args.kind), segment(&args.name));
            let _: LimitView = Client::new(&args.client).delete(&path, &[])?;
            println!("limit on {} {} removed", args.kind, args.name);
            Ok(EXIT_OK)
        }),
    }
}

fn describe(l: &LimitView) -> String {
    let mut parts = Vec::new();
    if let Some(c) = l.concurrency {
        parts.push(format!("{c} at once"));
    }
    if let Some(k) = l.per_key {
        parts.push(format!("{k} at once per key"));
    }
    if let Some(r) = l.rate {
        parts.push(format!("{} starts per {} s", r.starts, r.per_seconds));
    }
    format!("{:<8} {:<20} {}", l.kind, l.name, parts.join(", "))
}
