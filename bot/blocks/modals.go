package blocks

import (
	"github.com/slack-go/slack"
)

// DenyModal asks an approver why they deny a request. Slack enforces that a
// reason is given; private_metadata carries only the request ID, which the
// transport uses to find the request, never to decide anything.
func DenyModal(requestID string) slack.ModalViewRequest {
	input := slack.NewPlainTextInputBlockElement(plain("Why is this rotation denied?", maxPlaceholder), ActionReason).
		WithMultiline(true).
		WithMaxLength(MaxReasonLen)
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           plain("Deny rotation", maxModalTitle),
		Submit:          plain("Deny", maxModalTitle),
		Close:           plain("Cancel", maxModalTitle),
		CallbackID:      CallbackDenyReason,
		PrivateMetadata: requestID,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			section("You are denying request *" + name(requestID) + "*. The requester sees your reason in the thread."),
			slack.NewInputBlock(BlockReason, plain("Reason", maxInputLabel), nil, input),
		}},
	}
}

// PasteModal collects a secret a step asked for (label says which). The
// value travels only in Slack's view_submission to the transport, which
// hands it to the waiting step; private_metadata is PromptRef(requestID,
// promptID) and locates the prompt only.
func PasteModal(requestID, promptID, label string) slack.ModalViewRequest {
	input := slack.NewPlainTextInputBlockElement(plain("Paste the value here", maxPlaceholder), ActionSecret)
	if label == "" {
		label = "Secret value"
	}
	hint := plain("rotary passes this value straight to the rotation. It is never shown in Slack, never logged, and never stored by rotary.", maxHintText)
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           plain("Paste key", maxModalTitle),
		Submit:          plain("Submit", maxModalTitle),
		Close:           plain("Cancel", maxModalTitle),
		CallbackID:      CallbackPasteSecret,
		PrivateMetadata: PromptRef(requestID, promptID),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewInputBlock(BlockSecret, plain(label, maxInputLabel), hint, input),
		}},
	}
}
