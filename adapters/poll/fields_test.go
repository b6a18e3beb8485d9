package poll_test

import (
	"testing"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

type blockConfig struct {
	poll.ScheduleConfig `yaml:",inline"`
	Name                string     `yaml:"name" doc:"A key of the connector's own."`
	Paging              pagingConf `yaml:"paging" doc:"A block."`
}

type pagingConf struct {
	Type  string    `yaml:"type" default:"none" doc:"A defaulted key of the block."`
	Size  int       `yaml:"size" default:"100" doc:"Another."`
	Inner innerConf `yaml:"inner" doc:"A block in the block."`
}

type innerConf struct {
	Mode string `yaml:"mode" default:"fast" doc:"A defaulted key two blocks down."`
}

// TestDecodeConfig: a polling connector's configuration decodes with absent keys take their declared defaults, in absent
// blocks too, and given values are kept.
func TestDecodeConfig(t *testing.T) {
	sched := poll.ScheduleConfig{Schedule: "@every 1m", TimeZone: "UTC", CatchUp: "one", MaxCatchUp: 100}
	noCatchUp := sched
	noCatchUp.MaxCatchUp = 0
	tests := []struct {
		name   string
		values map[string]any
		want   blockConfig
	}{
		{name: "nothing", values: nil, want: blockConfig{ScheduleConfig: sched,
			Paging: pagingConf{Type: "none", Size: 100, Inner: innerConf{Mode: "fast"}},
		}},
		{name: "null block", values: map[string]any{"paging": nil}, want: blockConfig{ScheduleConfig: sched,
			Paging: pagingConf{Type: "none", Size: 100, Inner: innerConf{Mode: "fast"}},
		}},
		{name: "block in part", values: map[string]any{"name": "x", "paging": map[string]any{"size": 5}}, want: blockConfig{ScheduleConfig: sched,
			Name: "x", Paging: pagingConf{Type: "none", Size: 5, Inner: innerConf{Mode: "fast"}},
		}},
		{name: "zero kept", values: map[string]any{"max_catch_up": 0, "paging": map[string]any{"size": 0, "inner": map[string]any{"mode": "slow"}}}, want: blockConfig{ScheduleConfig: noCatchUp,
			Paging: pagingConf{Type: "none", Inner: innerConf{Mode: "slow"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got blockConfig
			if err := core.NewConfig("c", tt.values).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Decode() = %+v, want %+v", got, tt.want)
			}
		})
	}
	if err := core.NewConfig("c", map[string]any{"paging": map[string]any{"sise": 1}}).Decode(&blockConfig{}); err == nil {
		t.Fatal("Decode() accepted an unknown key")
	}
}
