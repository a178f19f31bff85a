//! `jobhost group show|cancel ID`: a batch's group, its progress and its cancel.

use clap::Subcommand;

use super::client::{segment, Client};
use super::jobs_cmd::{print_json, run, IdArgs};
use super::EXIT_OK;
use crate::server::types::{GroupCancelled, GroupView};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Show a group's progress: its members per status and its callbacks.
    Show(IdArgs),
    /// Cancel every pending member (its on_complete callback then runs).
    Cancel(IdArgs),
}

pub fn group(command: &GroupCommand) -> u8 {
    match command {
        GroupCommand::Show(args) => run(|| {
            let group: GroupView =
                Client::new(&args.client).get(&format!("/v1/groups/{}", segment(&args.id)), &[])?;
            if args.client.json {
                print_json(&group);
            } else {
                print_group(&group);
            }
            Ok(EXIT_OK)
        }),
        GroupCommand::Cancel(args) => run(|| {
            let done: GroupCancelled = Client::new(&args.client)
                .post(&format!("/v1/groups/{}/cancel", segment(&args.id)), None::<&()>)?;
            if args.client.json {
                print_json(&done);
            } else {
                println!("{} members cancelled", done.cancelled);
                print_group(&done.group);
            }
            Ok(EXIT_OK)
        }),
    }
}

fn print_group(group: &GroupView) {
    let finished: u64 = group.counts.iter().filter(|(s, _)| s.is_finished()).map(|(_, n)| n).sum();
    println!("group    {}{}", group.id, group.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default());
    println!("created  {}", group.created_at);
    println!(
        "members  {} finished of {}{}",
        finished + group.removed,
        group.total,
        if group.finished { ", all done" } else { "" }
    );
    for (status, n) in &group.counts {
        println!("  {status:<11} {n}");
    }
    if group.removed > 0 {
        println!("  {:<11} {}", "removed", group.removed);
    }
    for callback in &group.callbacks {
        let status = callback.status.map_or("removed".to_owned(), |s| s.to_string());
        let kind = serde_json::to_value(callback.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!("{kind:<12} job {} {status}", callback.id);
    }
}
