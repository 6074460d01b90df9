//! Print the plan of the built-in example (`cargo run -p bluegreen-core --example plan`).
use bluegreen_core::plan::{example_draft, example_spec};
use bluegreen_core::{DeploymentSpec, EnvironmentModel, Plan, Strategy};

fn main() {
    println!("{}", Plan::compile(&example_spec()));
    let mut d = example_draft();
    d.strategy = Strategy::Linear {
        step_percent: 25,
        interval_ms: 120_000,
    };
    d.environment = EnvironmentModel::TaskSet {
        service: "web".into(),
    };
    d.approval_timeout_ms = Some(600_000);
    println!("{}", Plan::compile(&DeploymentSpec::new(d).unwrap()));
}
