package config

// SuggestEventType returns the type in known closest to typ, when typ looks
// like a typo of it, or "". The `events tail --type` check uses it for its
// did-you-mean, as validation does for a rule's type.
func SuggestEventType(typ string, known []string) string { return suggestDotted(typ, known) }
