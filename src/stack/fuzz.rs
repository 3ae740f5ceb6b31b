//! Fuzzing stack loading and template rendering: every input is accepted or rejected with an error, never a
//! panic. Mutates the built-in stacks and templates byte by byte (and splices in TOML and placeholder
//! fragments) with a seeded generator; runs for `WFBOOT_FUZZ_SECONDS` (default 2) and prints the count.
//! `scripts/fuzz.sh` runs it for longer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::{builtin, template, Stack, Target};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic for a seed, good enough to explore inputs.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "{{",
    "}}",
    "{{partition}}",
    "{{principal:ec2}}",
    "{{account_id}}",
    "{{x}}",
    "\"",
    "[",
    "]",
    "[[role]]\n",
    "[[policy]]\n",
    "=",
    "\n",
    "name = \"",
    "trust = \"",
    "\\u0000",
    "é",
    "🦀",
    "{{principal:}}",
    ":",
    "/",
    "..",
    "${",
];

fn mutate(rng: &mut Rng, base: &str) -> String {
    let mut bytes = base.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 if at < bytes.len() => bytes[at] = rng.next() as u8,
            _ => {
                let f = FRAGMENTS[rng.below(FRAGMENTS.len())];
                bytes.splice(at..at, f.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_stacks_and_templates_are_accepted_or_rejected_never_a_panic() {
    let seconds: u64 = std::env::var("WFBOOT_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let seed: u64 = std::env::var("WFBOOT_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let mut rng = Rng(seed | 1);
    let target = Target { partition: "aws-cn".into(), account_id: "111122223333".into(), region: "cn-north-1".into() };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut accepted, mut panics) = (0u64, 0u64, Vec::new());
    while Instant::now() < deadline {
        let base_stack = builtin::PROFILES[rng.below(builtin::PROFILES.len())].1;
        let stack_text = mutate(&mut rng, base_stack);
        let base_template = builtin::TEMPLATES[rng.below(builtin::TEMPLATES.len())].1;
        let template_text = mutate(&mut rng, base_template);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let stack_ok = Stack::parse(&stack_text, "fuzz.toml", None).and_then(|s| s.render(&target)).is_ok();
            let _ = template::render(&template_text, &target);
            stack_ok
        }));
        match outcome {
            Ok(ok) => accepted += u64::from(ok),
            Err(_) => panics.push(stack_text.clone()),
        }
        runs += 1;
    }
    println!(
        "fuzz: {runs} executions in {seconds} s (seed {seed}), {accepted} stacks accepted, {} panics",
        panics.len()
    );
    assert!(runs > 100, "too few executions: {runs}");
    assert!(panics.is_empty(), "panicked on:\n{}", panics[0]);
}
