package runtime

import "github.com/tributary/tributary/core"

// payloadPathsMapper is a Mapper that knows what it reads of payloads
// (rules.Set.PayloadPaths).
type payloadPathsMapper interface {
	PayloadPaths() (paths []core.PayloadPath, all bool)
}

// PayloadPaths returns the paths the rule set reads of payloads.
func (m rulesMapper) PayloadPaths() ([]core.PayloadPath, bool) { return m.s.PayloadPaths() }

// setPayloadPaths tells a source that can prune payloads
// (core.PayloadPruner) what the connector's mapper reads of them, before
// the source opens: everything unless the mapper says (a plugin or a
// custom mapper reads whole payloads). A connector's mapper is fixed for
// its life and a reload starts a new connector with a new source, so the
// changes of one session are always read with the paths of the mapper
// that maps them.
func setPayloadPaths(src core.Source, m Mapper) {
	pr, ok := src.(core.PayloadPruner)
	if !ok {
		return
	}
	if pm, ok := m.(payloadPathsMapper); ok {
		paths, all := pm.PayloadPaths()
		pr.SetPayloadPaths(paths, all)
		return
	}
	pr.SetPayloadPaths(nil, true)
}
