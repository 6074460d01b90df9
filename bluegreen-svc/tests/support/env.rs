//! One emulator per test: moto, the fixture, the CloudWatch bridge and an adapter on them.

use std::sync::Arc;

use bluegreen_svc::cloud::aws::AwsCloud;

use super::cbor_bridge::CborBridge;
use super::fixture::Fixture;
use super::moto::Moto;

/// One emulator, its fixture, the bridge, and an adapter on them.
pub struct Env {
    pub fx: Arc<Fixture>,
    pub aws: AwsCloud,
    pub bridge: CborBridge,
    pub moto: Moto,
}

pub async fn env(test: &str) -> Option<Env> {
    let moto = Moto::start_or_skip(test).await?;
    let fx = Arc::new(Fixture::build(&moto).await);
    let bridge = CborBridge::start(&moto.endpoint).await;
    let aws = fx.aws_cloud(&moto, &bridge).await;
    Some(Env {
        fx,
        aws,
        bridge,
        moto,
    })
}
