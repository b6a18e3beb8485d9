package cli

import (
	"fmt"
	"html"
	"html/template"
	"slices"
	"strings"

	"github.com/tributary/tributary/core/catalog"
)

// stateDiagram draws e's state machine as an inline SVG for the console:
// the states left to right in declaration order (final ones with a double
// border, "within" under the name), each transition an arc labelled with
// its event type, above the boxes when it goes right, below when it goes
// back (higher the farther it goes), from a start dot when it starts an
// instance.
func stateDiagram(e catalog.Entity) template.HTML {
	const boxW, boxH, gap, top = 170, 44, 70, 190
	x := func(i int) int { return 40 + i*(boxW+gap) }
	index := map[string]int{}
	for i, s := range e.States {
		index[s.Name] = i
	}
	width := x(len(e.States)) + 10
	height := 2*top + boxH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="lifecycle" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="state diagram of %s">`,
		width, height, width, height, html.EscapeString(e.Name))
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>`)
	for i, s := range e.States {
		cls := "state"
		if slices.Contains(e.Final, s.Name) {
			cls += " final"
			fmt.Fprintf(&b, `<rect class="final-outer" x="%d" y="%d" width="%d" height="%d" rx="10"/>`, x(i)-4, top-4, boxW+8, boxH+8)
		}
		if s.Name == e.Initial {
			cls += " initial"
		}
		fmt.Fprintf(&b, `<g class="%s" data-state="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="8"/>`, cls, html.EscapeString(s.Name), x(i), top, boxW, boxH)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, x(i)+boxW/2, top+boxH/2+5, html.EscapeString(s.Name))
		if s.Within > 0 {
			fmt.Fprintf(&b, `<text class="within" x="%d" y="%d" text-anchor="middle">within %s</text>`, x(i)+boxW/2, top+boxH+16, html.EscapeString(s.Within.String()))
		}
		b.WriteString(`</g>`)
	}
	for _, tr := range e.Transitions {
		to, ok := index[tr.To]
		if !ok {
			continue
		}
		label := html.EscapeString(tr.EventType)
		if len(tr.From) == 0 {
			sx, sy := x(to)+boxW/2, 14
			fmt.Fprintf(&b, `<circle class="start" cx="%d" cy="%d" r="6"/><path class="transition" d="M%d,%d L%d,%d" marker-end="url(#arrow)"/>`, sx, sy, sx, sy+6, sx, top)
			fmt.Fprintf(&b, `<text class="event" x="%d" y="%d">%s</text>`, sx+8, sy+20, label)
			continue
		}
		for _, f := range tr.From {
			from, ok := index[f]
			if !ok {
				continue
			}
			forward := to >= from
			// Longer arcs rise higher, so that labels of arcs that
			// overlap in x sit at different heights.
			bump := 40 + 36*max(to-from, from-to)
			x1, x2 := x(from)+boxW/2+10, x(to)+boxW/2-10
			y, cy, ly := top, top-bump, top-bump/2-6
			if !forward {
				y, cy, ly = top+boxH, top+boxH+bump, top+boxH+bump/2+12
			}
			if from == to {
				x1, x2 = x(from)+boxW/2-20, x(from)+boxW/2+20
			}
			fmt.Fprintf(&b, `<path class="transition" d="M%d,%d Q%d,%d %d,%d" marker-end="url(#arrow)"/>`, x1, y, (x1+x2)/2, cy, x2, y)
			fmt.Fprintf(&b, `<text class="event" x="%d" y="%d" text-anchor="middle">%s</text>`, (x1+x2)/2, ly, label)
		}
	}
	b.WriteString(`</svg>`)
	// Every name and label above is escaped.
	return template.HTML(b.String())
}
