//! tidelog-compare: the same workloads on tidelog, kafko 0.2 and commitlog
//! 0.2, beside the machine's own limits measured in the same run. Prints a
//! table of medians, ranges and ratios, writes `results/latest.json` and one
//! SVG chart per workload. See README.md.

mod args;
mod bench;
mod chart;
mod engines;
mod limits;
mod report;
mod stats;
mod workload;

use args::{Args, Parsed, USAGE};
use bench::Bench;
use workload::{Sizes, WorkloadId};

/// `--quick` divides every count by this.
const QUICK_SCALE: usize = 100;

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("tidelog-compare: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&args.dir).expect("create the --dir directory");
    let sizes = Sizes::scaled(if args.quick { QUICK_SCALE } else { 1 });
    let mut bench = Bench::new(args, sizes);
    bench.limits();
    for w in WorkloadId::ALL {
        if bench.selected(w) {
            bench.workload(w);
        }
    }
    bench.finish();
}
