//! Amazon Resource Names: the one place that takes them apart.
//!
//! `arn:<partition>:<service>:<region>:<account>:<resource>` where `<resource>` is
//! `<type>/<path>` (ECS, ELBv2) or `<type>:<name>` (CloudWatch alarms). Core, the
//! simulator and the service all read names, accounts and regions through here, so a
//! kind of ARN is understood the same way everywhere.
//!
//! The kinds this project handles, and the short name each prints as:
//!
//! | kind | resource | short name |
//! |---|---|---|
//! | ECS cluster | `cluster/<name>` | `<name>` |
//! | ECS service | `service/<cluster>/<name>` (or the old `service/<name>`) | `<name>` |
//! | ECS task set | `task-set/<cluster>/<service>/<id>` (the id is `ecs-svc/<digits>`) | `<id>` |
//! | ECS task definition | `task-definition/<family>:<revision>` | `<family>:<revision>` |
//! | ECS task | `task/<cluster>/<id>` | `<id>` |
//! | ELBv2 target group | `targetgroup/<name>/<id>` | `<name>` |
//! | ELBv2 load balancer | `loadbalancer/app/<name>/<id>` | `<name>` |
//! | ELBv2 listener | `listener/app/<lb-name>/<lb-id>/<id>` | `<id>` |
//! | ELBv2 listener rule | `listener-rule/app/<lb-name>/<lb-id>/<listener-id>/<id>` | `<id>` |
//! | CloudWatch alarm | `alarm:<name>` | `<name>` |
//!
//! Anything that does not parse as an ARN is taken to be a name already and prints as is.

use core::fmt;

/// A borrowed, parsed ARN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    /// Empty for global services.
    pub region: &'a str,
    /// Empty for some global resources.
    pub account: &'a str,
    /// Everything after the account: `<type>/<path>` or `<type>:<name>`.
    pub resource: &'a str,
}

/// Why a string is not an ARN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArnError {
    /// It does not start with `arn:`.
    NotAnArn,
    /// Fewer than six `:`-separated parts, or an empty partition, service or resource.
    Malformed,
}

impl fmt::Display for ArnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArnError::NotAnArn => "does not start with \"arn:\"",
            ArnError::Malformed => "is not arn:<partition>:<service>:<region>:<account>:<resource>",
        })
    }
}

impl std::error::Error for ArnError {}

impl<'a> Arn<'a> {
    /// Split an ARN into its parts (no allocation).
    pub fn parse(s: &'a str) -> Result<Arn<'a>, ArnError> {
        let rest = s.strip_prefix("arn:").ok_or(ArnError::NotAnArn)?;
        let mut parts = rest.splitn(5, ':');
        let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(ArnError::Malformed);
        };
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err(ArnError::Malformed);
        }
        Ok(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }

    /// The resource type: `targetgroup`, `listener`, `service`, `task-set`, `alarm`, …
    pub fn resource_type(&self) -> &'a str {
        let end = self
            .resource
            .find(['/', ':'])
            .unwrap_or(self.resource.len());
        &self.resource[..end]
    }

    /// The resource after its type (`web-a/0123` for a target group).
    pub fn resource_path(&self) -> &'a str {
        let t = self.resource_type();
        self.resource.get(t.len() + 1..).unwrap_or_default()
    }

    /// The path's `/`-separated segments.
    fn segment(&self, n: usize) -> Option<&'a str> {
        self.resource_path()
            .split('/')
            .nth(n)
            .filter(|s| !s.is_empty())
    }

    /// The resource's own name, for messages and for matching names AWS returns (see the
    /// module's table). Unknown kinds print their last path segment.
    pub fn short_name(&self) -> &'a str {
        let path = self.resource_path();
        let last = path.rsplit('/').next().unwrap_or(path);
        let named = match self.resource_type() {
            // targetgroup/<name>/<id>
            "targetgroup" => self.segment(0),
            // loadbalancer/app/<name>/<id>
            "loadbalancer" => self.segment(1),
            // task-set/<cluster>/<service>/<id>, and the id itself holds a `/`
            "task-set" => path.splitn(3, '/').nth(2),
            // Everything else ends in its own name or id; listeners and rules have no
            // name, and their id names them within their load balancer.
            _ => Some(last),
        };
        named.filter(|s| !s.is_empty()).unwrap_or(self.resource)
    }

    /// The load balancer a listener, listener rule or load balancer ARN belongs to, as
    /// CloudWatch names it in the `LoadBalancer` dimension: `app/<name>/<id>`.
    pub fn load_balancer_dimension(&self) -> Option<String> {
        match self.resource_type() {
            "listener" | "listener-rule" | "loadbalancer" => {
                let (kind, name, id) = (self.segment(0)?, self.segment(1)?, self.segment(2)?);
                Some(format!("{kind}/{name}/{id}"))
            }
            _ => None,
        }
    }

    /// A target group ARN's `TargetGroup` CloudWatch dimension: `targetgroup/<name>/<id>`.
    pub fn target_group_dimension(&self) -> Option<String> {
        if self.resource_type() != "targetgroup" {
            return None;
        }
        self.segment(0)?;
        Some(self.resource.to_string())
    }

    /// A task definition's family and revision (`task-definition/<family>:<rev>`).
    pub fn family_and_revision(&self) -> Option<(&'a str, Option<u32>)> {
        if self.resource_type() != "task-definition" {
            return None;
        }
        Some(family_and_revision(self.resource_path()))
    }
}

impl fmt::Display for Arn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// The short name of an ARN (see the module's table), or the string itself when it is
/// not an ARN (already a name).
pub fn short_name(arn_or_name: &str) -> &str {
    match Arn::parse(arn_or_name) {
        Ok(arn) => arn.short_name(),
        Err(_) => arn_or_name,
    }
}

/// `(family, revision)` of `arn:…:task-definition/<family>:<rev>`, `<family>:<rev>` or
/// `<family>`.
pub fn family_and_revision(task_definition: &str) -> (&str, Option<u32>) {
    let tail = match Arn::parse(task_definition) {
        Ok(arn) if arn.resource_type() == "task-definition" => arn.resource_path(),
        _ => task_definition,
    };
    match tail.rsplit_once(':') {
        Some((family, rev)) => match rev.parse() {
            Ok(rev) => (family, Some(rev)),
            Err(_) => (tail, None),
        },
        None => (tail, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TG: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-a/0123abcd";
    const LB: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
    const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
    const CLUSTER: &str = "arn:aws:ecs:eu-west-1:210987654321:cluster/prod";
    const SERVICE: &str = "arn:aws:ecs:eu-west-1:210987654321:service/prod/web-a";
    const SERVICE_OLD: &str = "arn:aws:ecs:eu-west-1:210987654321:service/web-a";
    const TASK_SET: &str =
        "arn:aws:ecs:eu-west-1:210987654321:task-set/prod/web/ecs-svc/1234567890";
    const TASK_DEF: &str = "arn:aws:ecs:eu-west-1:210987654321:task-definition/web:12";
    const TASK: &str = "arn:aws:ecs:eu-west-1:210987654321:task/prod/0f1e2d3c4b5a";
    const ALARM: &str = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-5xx";

    #[test]
    fn every_arn_kind_prints_its_own_name() {
        let table = [
            (TG, "targetgroup", "web-a"),
            (LB, "loadbalancer", "web"),
            (LISTENER, "listener", "f2f7dc8efc522ab2"),
            (RULE, "listener-rule", "9683b2d02a6cabee"),
            (CLUSTER, "cluster", "prod"),
            (SERVICE, "service", "web-a"),
            (SERVICE_OLD, "service", "web-a"),
            (TASK_SET, "task-set", "ecs-svc/1234567890"),
            (TASK_DEF, "task-definition", "web:12"),
            (TASK, "task", "0f1e2d3c4b5a"),
            (ALARM, "alarm", "web-5xx"),
        ];
        for (arn, kind, name) in table {
            let parsed = Arn::parse(arn).unwrap();
            assert_eq!(parsed.resource_type(), kind, "{arn}");
            assert_eq!(parsed.short_name(), name, "{arn}");
            assert_eq!(short_name(arn), name, "{arn}");
            assert_eq!(parsed.to_string(), arn, "an ARN prints back as itself");
        }
    }

    #[test]
    fn a_task_set_arn_prints_the_task_set_not_its_service() {
        // The bug this module replaced: "the last segment" returned the second-to-last.
        // A task set's id holds a `/` itself (`ecs-svc/<digits>`): neither the service
        // nor half the id.
        assert_ne!(short_name(TASK_SET), "web");
        assert_ne!(short_name(TASK_SET), "ecs-svc");
        assert_ne!(short_name(TASK_SET), "1234567890");
        assert_eq!(short_name(TASK_SET), "ecs-svc/1234567890");
        assert_eq!(
            short_name("arn:aws:ecs:r:1:task-set/prod/web/ts-7"),
            "ts-7",
            "an id without a slash"
        );
    }

    #[test]
    fn account_region_and_service_come_from_their_fields() {
        let a = Arn::parse(SERVICE).unwrap();
        assert_eq!(
            (a.partition, a.service, a.region, a.account),
            ("aws", "ecs", "eu-west-1", "210987654321")
        );
        let a = Arn::parse(LISTENER).unwrap();
        assert_eq!((a.region, a.account), ("us-east-1", "123456789012"));
        assert_eq!(a.service, "elasticloadbalancing");
        let a = Arn::parse("arn:aws-cn:ecs:cn-north-1:1:cluster/x").unwrap();
        assert_eq!((a.partition, a.region), ("aws-cn", "cn-north-1"));
    }

    #[test]
    fn names_that_are_not_arns_print_as_themselves() {
        for name in ["web-a", "prod", "web:3", "ecs-svc/123", ""] {
            assert_eq!(short_name(name), name);
        }
        assert_eq!(Arn::parse("web-a"), Err(ArnError::NotAnArn));
    }

    #[test]
    fn malformed_arns_are_refused_with_a_reason() {
        for bad in [
            "arn:",
            "arn:aws:ecs",
            "arn:aws:ecs:r:a",
            "arn::ecs:r:a:x",
            "arn:aws:ecs:r:a:",
        ] {
            assert_eq!(Arn::parse(bad), Err(ArnError::Malformed), "{bad}");
            assert_eq!(short_name(bad), bad);
        }
        assert!(ArnError::Malformed.to_string().contains("<resource>"));
        assert!(ArnError::NotAnArn.to_string().contains("arn:"));
    }

    #[test]
    fn resource_paths_follow_the_type() {
        assert_eq!(Arn::parse(TG).unwrap().resource_path(), "web-a/0123abcd");
        assert_eq!(Arn::parse(ALARM).unwrap().resource_path(), "web-5xx");
        assert_eq!(
            Arn::parse("arn:aws:ecs:r:a:cluster")
                .unwrap()
                .resource_path(),
            ""
        );
        // A resource with no path prints as its whole resource part.
        assert_eq!(short_name("arn:aws:ecs:r:a:cluster"), "cluster");
        assert_eq!(
            short_name("arn:aws:elasticloadbalancing:r:a:targetgroup/"),
            "targetgroup/"
        );
    }

    #[test]
    fn cloudwatch_dimensions_come_from_load_balancer_and_target_group_arns() {
        for arn in [LB, LISTENER, RULE] {
            assert_eq!(
                Arn::parse(arn)
                    .unwrap()
                    .load_balancer_dimension()
                    .as_deref(),
                Some("app/web/50dc6c495c0c9188"),
                "{arn}"
            );
        }
        assert_eq!(Arn::parse(TG).unwrap().load_balancer_dimension(), None);
        assert_eq!(
            Arn::parse("arn:aws:elasticloadbalancing:r:a:listener/app/web")
                .unwrap()
                .load_balancer_dimension(),
            None
        );
        assert_eq!(
            Arn::parse(TG).unwrap().target_group_dimension().as_deref(),
            Some("targetgroup/web-a/0123abcd")
        );
        assert_eq!(Arn::parse(LB).unwrap().target_group_dimension(), None);
    }

    #[test]
    fn task_definitions_split_into_family_and_revision() {
        assert_eq!(family_and_revision(TASK_DEF), ("web", Some(12)));
        assert_eq!(
            Arn::parse(TASK_DEF).unwrap().family_and_revision(),
            Some(("web", Some(12)))
        );
        assert_eq!(Arn::parse(TG).unwrap().family_and_revision(), None);
        assert_eq!(family_and_revision("web:3"), ("web", Some(3)));
        assert_eq!(family_and_revision("web"), ("web", None));
        assert_eq!(family_and_revision("web:latest"), ("web:latest", None));
        // Another kind of ARN is no task definition: it stays whole.
        assert_eq!(family_and_revision(TG), (TG, None));
    }
}
