// Package blocks owns every word rotary says to people: the Block Kit
// messages, thread replies, announcements, modals, help and the ephemeral
// error texts. It is the one place user-facing text is produced, so wording,
// escaping and Slack's size limits are handled once.
//
// Rules this package keeps:
//   - Pure functions: no I/O, no clock reads (the caller passes now), no
//     randomness, and deterministic output (maps are walked in sorted order),
//     so every message has a golden-file test.
//   - Every value that did not come from this package's own literals (reasons,
//     outcomes, step details and errors, IDs, target names, error messages) is
//     escaped for Slack mrkdwn before it is placed in mrkdwn text or fallback
//     text, so nobody can inject <!channel>, a user mention or a link.
//     plain_text objects (headers, labels) are never parsed by Slack, so they
//     are only cleaned of control characters and clipped.
//   - User IDs are rendered as mentions only when they look like Slack IDs;
//     times are Slack date tokens, so each reader sees their own timezone.
//   - Texts are clipped to Slack's limits without splitting an escape entity
//     or a <…> token, and messages never exceed Slack's block count.
//   - Internal error text is never shown to users: ErrorText maps known errors
//     to guidance and everything else to a reference the transport logs.
//   - No secret value ever reaches this package: requests, runs and prompts
//     hold none, and the paste modal only collects one for the transport.
package blocks
