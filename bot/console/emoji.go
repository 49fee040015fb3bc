package console

// emoji returns the character Slack shows for a :shortcode:, for the
// shortcodes rotary's messages use and a few common ones. Unknown
// shortcodes stay as typed, as Slack shows them when no emoji matches.
func emoji(name string) (string, bool) {
	switch name {
	case "arrow_right_hook":
		return "↪️", true
	case "calendar":
		return "📆", true
	case "fast_forward":
		return "⏩", true
	case "no_entry_sign":
		return "🚫", true
	case "spiral_note_pad":
		return "🗒️", true
	case "arrows_counterclockwise":
		return "🔄", true
	case "ballot_box_with_check":
		return "☑️", true
	case "grey_question":
		return "❔", true
	case "heavy_minus_sign":
		return "➖", true
	case "hourglass":
		return "⌛", true
	case "hourglass_flowing_sand":
		return "⏳", true
	case "information_source":
		return "ℹ️", true
	case "key":
		return "🔑", true
	case "leftwards_arrow_with_hook":
		return "↩️", true
	case "no_entry":
		return "⛔", true
	case "raised_hand":
		return "✋", true
	case "repeat":
		return "🔁", true
	case "rotating_light":
		return "🚨", true
	case "warning":
		return "⚠️", true
	case "wastebasket":
		return "🗑️", true
	case "white_check_mark":
		return "✅", true
	case "white_circle":
		return "⚪", true
	case "x":
		return "❌", true
	case "heavy_check_mark":
		return "✔️", true
	case "lock":
		return "🔒", true
	case "unlock":
		return "🔓", true
	case "bell":
		return "🔔", true
	case "eyes":
		return "👀", true
	case "tada":
		return "🎉", true
	case "rocket":
		return "🚀", true
	case "+1", "thumbsup":
		return "👍", true
	case "-1", "thumbsdown":
		return "👎", true
	case "red_circle":
		return "🔴", true
	case "large_green_circle":
		return "🟢", true
	case "large_yellow_circle":
		return "🟡", true
	case "clock1", "clock":
		return "🕐", true
	case "fire":
		return "🔥", true
	case "shield":
		return "🛡️", true
	}
	return "", false
}
