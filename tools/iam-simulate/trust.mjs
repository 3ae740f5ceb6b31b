// Test tool only: may a service assume a role? A role's trust document evaluated with @cloud-copilot/iam-simulate
// as IAM evaluates it, as the resource policy of the role, for `sts:AssumeRole` requested by a service principal
// (lambda.amazonaws.com, ...) with a request context (aws:SourceAccount, aws:SourceArn, ...). No identity policy
// takes part: a service principal is allowed exactly when the trust document allows it and nothing in it denies it.
// The tests of `wfboot verify` compare wfboot's offline trust verdicts with these. One JSON object a line on stdin,
// one line back each, in order (as tools/iam-simulate/sidecar.mjs):
//
//   {"id": 1, "cases": [{"trust": {...} | "<the document as JSON text>", "service": "lambda.amazonaws.com",
//                        "role": "arn:aws:iam::123456789012:role/R", "context": {"aws:SourceAccount": "123456789012",
//                        "aws:SourceArn": "arn:aws:lambda:us-east-1:123456789012:function:F"},
//                        "action": "sts:AssumeRole"}, ...]}
//   {"id": 1, "results": [{"decision": "allowed" | "explicitDeny" | "implicitDeny", "allowed": true | false,
//                          "matched": [0], "missing": ["aws:SourceArn"],
//                          "statements": [{"index": 0, "effect": "Allow", "principal": true, "action": true,
//                                          "conditions": true, "missing": []}],
//                          "validated": true, "error": null}, ...]}
//
// `action` is optional (default sts:AssumeRole). `context` values are strings, or lists of strings for list-typed
// keys. `decision` uses IAM's words (EvalDecision); `allowed` is decision == "allowed". `matched`: the indexes of
// the statements that decided it (the Deny statements of an explicit deny, else the Allow statements that allow).
// `statements`: for each statement of the document, in order, whether its Principal names the service (`principal`;
// NotPrincipal read as IAM does), its Action the action, and its Condition holds for the context (`conditions`),
// with the condition keys the context lacks (`missing`; a condition on a missing key does not hold). `missing` at
// the top: those of the statements whose principal and action match. `validated` is false when iam-simulate refused
// the request or the document as invalid; `decision` then comes from its evaluation without validation, and
// `error` says why. A line that is not JSON is answered {"id": null, "error": "..."}.
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

function accountOf(arn) {
  const parts = String(arn || '').split(':')
  return parts.length > 4 ? parts[4] : ''
}

function simulation(c, trust) {
  return {
    request: {
      principal: c.service,
      action: c.action || 'sts:AssumeRole',
      resource: { resource: c.role, accountId: c.account || accountOf(c.role) },
      contextVariables: c.context || {}
    },
    identityPolicies: [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: trust
  }
}

// iam-simulate's analyses carry the parsed statement; the index is found by content, as in sidecar.mjs.
function indexOf(trust, analysis) {
  const wanted = JSON.stringify(analysis.statement)
  const index = statementsOf(trust).findIndex((s) => JSON.stringify(s) === wanted)
  return index
}

function describe(trust, analysis) {
  const explain = analysis.explain || {}
  const conditions = explain.conditions || []
  return {
    index: indexOf(trust, analysis),
    effect: explain.effect || analysis.statement?.Effect,
    principal: explain.principalMatch === 'Match',
    action: Boolean(explain.actionMatch),
    conditions: explain.conditionMatch !== false,
    missing: [...new Set(conditions.filter((k) => k.failedBecauseMissing).map((k) => k.conditionKeyValue))].sort()
  }
}

// iam-simulate's validation errors: {"message": "policy.errors", "resourcePolicyErrors": [{path, message}], ...}.
function errorText(errors) {
  if (!errors) return 'invalid request'
  const details = []
  for (const [kind, list] of Object.entries(errors)) {
    if (!Array.isArray(list)) continue
    for (const e of list) details.push(typeof e === 'string' ? `${kind}: ${e}` : `${kind}: ${e.path ? e.path + ': ' : ''}${e.message ?? JSON.stringify(e)}`)
  }
  return details.length ? details.join('; ') : errors.message || JSON.stringify(errors)
}

async function evaluate(c) {
  let trust = c.trust
  if (typeof trust === 'string') trust = JSON.parse(trust)
  if (!c.service || !c.role) throw new Error('a case needs `service` and `role`')
  if (!/^arn:[^:]+:iam::\d{12}:role\/./.test(c.role)) throw new Error(`\`role\` is not a role ARN: ${c.role}`)
  const response = await runSimulation(simulation(c, trust), { simulationMode: 'Strict' })
  if (response.resultType === 'error') {
    // Evaluated without validation where iam-simulate can (an unknown action); a document it cannot read at all
    // (an Effect that is neither Allow nor Deny) allows nothing.
    let decision = 'ImplicitlyDenied'
    try {
      decision = runUnsafeSimulation(simulation(c, trust), { simulationMode: 'Strict' })
    } catch {}
    return {
      decision: DECISION[decision] || 'implicitDeny',
      allowed: decision === 'Allowed',
      matched: [],
      missing: [],
      statements: [],
      validated: false,
      error: errorText(response.errors)
    }
  }
  if (response.resultType !== 'single') {
    throw new Error(`unexpected ${response.resultType} result for a single role ARN`)
  }
  const analysis = response.result.analysis
  const overall = analysis.result
  const resource = analysis.resourceAnalysis || {}
  const all = [...(resource.allowStatements || []), ...(resource.denyStatements || []),
    ...(resource.unmatchedStatements || [])]
  const statements = all.map((a) => describe(trust, a)).sort((a, b) => a.index - b.index)
  const deciding = overall === 'ExplicitlyDenied' ? resource.denyStatements || []
    : overall === 'Allowed' ? resource.allowStatements || [] : []
  const missing = new Set()
  for (const s of statements) {
    if (s.principal && s.action) for (const k of s.missing) missing.add(k)
  }
  return {
    decision: DECISION[overall] || 'implicitDeny',
    allowed: overall === 'Allowed',
    matched: [...new Set(deciding.map((a) => indexOf(trust, a)))].sort((a, b) => a - b),
    missing: [...missing].sort(),
    statements,
    validated: true,
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
      results.push({ decision: 'implicitDeny', allowed: false, matched: [], missing: [], statements: [],
        validated: false, error: String(e && e.message ? e.message : e) })
    }
  }
  return { id: request.id ?? null, results }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
let queue = Promise.resolve()
lines.on('line', (line) => {
  if (!line.trim()) return
  queue = queue.then(async () => {
    const answer = await handle(line)
    process.stdout.write(JSON.stringify(answer) + '\n')
  })
})
process.stdout.write(JSON.stringify({ ready: true, tool: 'trust', version: '0.1.173' }) + '\n')
