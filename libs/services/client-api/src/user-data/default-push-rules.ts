// The spec's server-default push rules live in @tessera/protocol (pure Matrix, shared with the evaluator).
export { defaultPushRules, PUSH_RULE_KINDS, type PushRule, type PushRuleKind, type PushRuleset } from '@tessera/protocol';
