package blocks

import "strings"

// Action, callback, block and action IDs the transport routes on. They are
// part of the contract with messages already posted in Slack: renaming one
// breaks the buttons of every open request, so add new IDs instead.
const (
	// ActionApprove is the Approve button on a pending request; its value is the request ID.
	ActionApprove = "rotary_approve"
	// ActionDeny is the Deny button; it opens DenyModal. Its value is the request ID.
	ActionDeny = "rotary_deny"
	// ActionReview is the Reviewed button of a break-glass rotation; its value is the request ID.
	ActionReview = "rotary_review"
	// ActionFollowUpNow and ActionFollowUpPostpone act on a scheduled
	// follow-up; their value is PromptRef(requestID, followUpName).
	ActionFollowUpNow      = "rotary_followup_now"
	ActionFollowUpPostpone = "rotary_followup_postpone"
	// ActionPrompt answers a confirmation prompt or opens PasteModal for a
	// secret prompt. Its value is PromptRef(requestID, promptID).
	ActionPrompt = "rotary_prompt"

	// CallbackDenyReason is DenyModal's callback ID; private_metadata is the request ID.
	CallbackDenyReason = "rotary_deny_reason"
	// CallbackPasteSecret is PasteModal's callback ID; private_metadata is PromptRef(requestID, promptID).
	CallbackPasteSecret = "rotary_paste_secret"

	// BlockReason/ActionReason locate the deny reason in a view_submission's state values.
	BlockReason  = "rotary_reason_block"
	ActionReason = "rotary_reason"
	// BlockSecret/ActionSecret locate the pasted secret in a view_submission's state values.
	BlockSecret  = "rotary_secret_block"
	ActionSecret = "rotary_secret"

	// BlockDecision holds the Approve/Deny buttons; BlockPrompt holds the prompt button.
	BlockDecision = "rotary_decision"
	BlockPrompt   = "rotary_prompt_actions"
	// BlockReview holds the Reviewed button; BlockFollowUp the follow-up buttons.
	BlockReview   = "rotary_review_actions"
	BlockFollowUp = "rotary_followup_actions"
)

// promptRefSep separates the request ID from the prompt ID in button values
// and private_metadata. Neither ID may contain it (ParsePromptRef rejects such refs).
const promptRefSep = "|"

// PromptRef is the value carried by a prompt button and a paste modal:
// "<requestID>|<promptID>". It only locates the prompt; the transport checks
// who may answer against the stored request, never against this value.
func PromptRef(requestID, promptID string) string {
	return requestID + promptRefSep + promptID
}

// ParsePromptRef splits a PromptRef. ok is false unless both parts are
// non-empty and there is exactly one separator.
func ParsePromptRef(ref string) (requestID, promptID string, ok bool) {
	requestID, promptID, found := strings.Cut(ref, promptRefSep)
	if !found || requestID == "" || promptID == "" || strings.Contains(promptID, promptRefSep) {
		return "", "", false
	}
	return requestID, promptID, true
}
