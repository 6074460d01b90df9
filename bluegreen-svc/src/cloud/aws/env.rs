//! Building the AWS cloud for `[cloud] kind = "aws"`: the AWS adapter (`crate::cloud::aws`)
//! over the standard `aws-config` chain — region, credentials (environment, profile,
//! ECS task role, instance metadata) and `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`.

/// The AWS adapter as the service drives it (hooks are added by `HookedCloud`).
pub type AwsKind = crate::cloud::aws::AwsCloud;

/// The AWS cloud from the standard chain; refuses to start without a region.
pub async fn build() -> Result<AwsKind, String> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    if config.region().is_none() {
        return Err(
            "cloud.kind = \"aws\": no AWS region (set AWS_REGION, or a profile with a region)"
                .into(),
        );
    }
    Ok(crate::cloud::aws::AwsCloud::new(&config))
}
