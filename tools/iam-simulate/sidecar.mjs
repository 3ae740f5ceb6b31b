// A long-lived evaluator of IAM requests with @cloud-copilot/iam-simulate, for tests only: the emulator's
// iam:SimulatePrincipalPolicy (tools/simulator.py) and the differential test of wfboot's own evaluator
// (src/policy_eval.rs) send it batches of cases, one JSON object a line on stdin, and read one line back each:
//
//   {"id": 1, "cases": [{"policies": [{"name": "P", "policy": {...}}], "boundaries": [...],
//                        "scps": [{"orgIdentifier": "r-root", "policies": [{"name": "S", "policy": {...}}]}, ...],
//                        "principal": "arn:...", "account": "123456789012", "action": "iam:PassRole",
//                        "resource": "arn:...", "context": {"iam:PassedToService": "ec2.amazonaws.com"},
//                        "mode": "Strict" | "Discovery"}, ...]}
//   {"id": 1, "results": [{"decision": "allowed" | "explicitDeny" | "implicitDeny",
//                          "matched": [{"policy": "P", "index": 0}], "missing": ["iam:PassedToService"],
//                          "validated": true, "conditional": false, "error": null}, ...]}
//
// `decision` uses IAM's words (EvalDecision). `matched` are the statements that decided it, as IAM reports them
// (the deny statements of an explicit deny, else the allow statements), by policy name and statement index.
// `missing` are the condition keys of statements that match the action and resource but that the request context
// does not supply (IAM's MissingContextValues). `validated` is false when iam-simulate refused the request as
// invalid (an action it does not know, a resource of another type) and the decision comes from its evaluation
// without validation. `conditional` (Discovery mode only) is true when the request is allowed only under
// conditions on keys the context does not give, or a conditional Deny might apply.
//
// `scps` (optional) are the service control policies, one entry per level from the root down to the account
// (the differential test of src/policy_eval/scp.rs).
//
// The process ends when stdin closes. Nothing here opens a network connection.

import { createInterface } from 'node:readline'
import { runSimulation, runUnsafeSimulation } from '@cloud-copilot/iam-simulate'

const DECISION = {
  Allowed: 'allowed',
  ExplicitlyDenied: 'explicitDeny',
  ImplicitlyDenied: 'implicitDeny'
}

function statementsOf(policy) {
  const s = policy && policy.Statement
  if (Array.isArray(s)) return s
  return s ? [s] : []
}

function simulation(c) {
  return {
    request: {
      principal: c.principal,
      action: c.action,
      resource: { resource: c.resource, accountId: c.account },
      contextVariables: c.context || {}
    },
    identityPolicies: c.policies || [],
    permissionBoundaryPolicies: c.boundaries && c.boundaries.length ? c.boundaries : undefined,
    resourcePolicy: c.resourcePolicy,
    serviceControlPolicies: c.scps || [],
    resourceControlPolicies: []
  }
}

// Position of a statement analysis in its policy: iam-simulate reports the statement object, which is the
// parsed one; compare by content.
function indexOf(policies, analysis) {
  const policy = policies.find((p) => p.name === analysis.policyId)
  if (!policy) return -1
  const wanted = JSON.stringify(analysis.statement)
  return statementsOf(policy.policy).findIndex((s) => JSON.stringify(s) === wanted)
}

function missingKeys(analyses) {
  const keys = new Set()
  for (const a of analyses) {
    if (!a.actionMatch || !a.resourceMatch) continue
    for (const condition of a.explain?.conditions || []) {
      if (condition.failedBecauseMissing) keys.add(condition.conditionKeyValue)
    }
  }
  return [...keys].sort()
}

async function evaluate(c) {
  const mode = c.mode === 'Discovery' ? 'Discovery' : 'Strict'
  const response = await runSimulation(simulation(c), { simulationMode: mode })
  if (response.resultType === 'error') {
    // Unknown to iam-simulate's data (an action it does not list, a resource type the action has not):
    // evaluated without validation, so only the decision is known.
    const decision = runUnsafeSimulation(simulation(c), { simulationMode: mode })
    return {
      decision: DECISION[decision] || 'implicitDeny',
      matched: [],
      missing: [],
      validated: false,
      conditional: false,
      error: response.errors?.message || 'invalid request'
    }
  }
  const results = response.resultType === 'single' ? [response.result] : response.results
  const overall = response.overallResult
  // A wildcard resource (`*`) may be simulated once per resource pattern the policies name: report the statements
  // of the results that agree with the overall decision.
  const deciding = results.filter((r) => r.analysis?.result === overall)
  const matched = []
  const missing = new Set()
  let conditional = false
  for (const r of results) {
    const identity = r.analysis?.identityAnalysis
    if (!identity) continue
    const all = [...identity.allowStatements, ...identity.denyStatements, ...identity.unmatchedStatements]
    for (const k of missingKeys(all)) missing.add(k)
    if (mode === 'Discovery') {
      const conditions = r.analysis?.conditions
      const ignored = r.analysis?.ignoredConditions?.identity
      if ((conditions && conditions.conditionType !== 'always') || ignored?.allow?.length || ignored?.deny?.length) {
        conditional = true
      }
    }
  }
  for (const r of deciding) {
    const identity = r.analysis?.identityAnalysis
    if (!identity) continue
    const statements = overall === 'ExplicitlyDenied' ? identity.denyStatements : overall === 'Allowed' ? identity.allowStatements : []
    for (const s of statements) {
      const entry = { policy: s.policyId, index: indexOf(c.policies || [], s) }
      if (!matched.some((m) => m.policy === entry.policy && m.index === entry.index)) matched.push(entry)
    }
  }
  if (response.resultType === 'wildcard' && overall !== 'Allowed' && c.resource !== '*') {
    // iam-simulate reads wildcards in the request's resource as "some resource like this" and keeps no analysis
    // when that pattern itself is implicitly denied; IAM's simulator compares the ARN as given. The statements
    // that match it as given are those that match it with its wildcards made a name no policy uses: their
    // missing keys are IAM's MissingContextValues.
    const literal = { ...c, resource: c.resource.replace(/[*?]/g, 'wfboot-literal-wildcard') }
    const again = await runSimulation(simulation(literal), { simulationMode: 'Strict' })
    if (again.resultType === 'single' && again.result?.analysis?.identityAnalysis) {
      const identity = again.result.analysis.identityAnalysis
      for (const k of missingKeys([...identity.allowStatements, ...identity.denyStatements, ...identity.unmatchedStatements])) {
        missing.add(k)
      }
    }
  }
  return {
    decision: DECISION[overall] || 'implicitDeny',
    matched,
    missing: [...missing].sort(),
    validated: true,
    conditional,
    error: null
  }
}

async function handle(line) {
  let request
  try {
    request = JSON.parse(line)
  } catch (e) {
    return { id: null, error: `not JSON: ${e.message}` }
  }
  const results = []
  for (const c of request.cases || []) {
    try {
      results.push(await evaluate(c))
    } catch (e) {
      results.push({ decision: 'implicitDeny', matched: [], missing: [], validated: false, conditional: false, error: String(e && e.stack ? e.stack : e) })
    }
  }
  return { id: request.id ?? null, results }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
// One line at a time, in order: answers come back in the order the batches were sent.
let queue = Promise.resolve()
lines.on('line', (line) => {
  if (!line.trim()) return
  queue = queue.then(async () => {
    const answer = await handle(line)
    process.stdout.write(JSON.stringify(answer) + '\n')
  })
})
// When stdin closes, the process ends by itself once the last answer is written (process.exit could cut a
// long answer short on a pipe).
process.stdout.write(JSON.stringify({ ready: true, version: '0.1.173' }) + '\n')
