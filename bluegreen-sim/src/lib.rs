//! bluegreen-sim: an in-memory ECS / ELBv2 / CloudWatch world in virtual time, seeded
//! faults, an invariant auditor and a many-seed runner (work in progress).
