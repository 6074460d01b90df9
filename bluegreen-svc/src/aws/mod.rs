//! The AWS adapter: [`bluegreen_core::Cloud`] over the real AWS SDK (work in progress).
