package cli_test

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateValidate = flag.Bool("update-validate", false, "rewrite the expected outputs in testdata/validate")

// TestValidateGolden runs `tributary validate` on each folder of
// testdata/validate and compares what it prints with the folder's
// expectations: want.txt holds the exit code and the human output (stdout
// and stderr), want.json, when present, the output of --json. Absolute
// paths of the folder read as $DIR. Adding a folder adds a case;
// -update-validate rewrites the expectations.
func TestValidateGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/validate/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no cases in testdata/validate")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			abs, err := filepath.Abs(dir)
			if err != nil {
				t.Fatal(err)
			}
			normalize := func(s string) string { return strings.ReplaceAll(s, abs, "$DIR") }
			file := filepath.Join(dir, "tributary.yaml")

			code, out, errOut := runCLI(t, "validate", "-c", file)
			got := normalize("exit " + strconv.Itoa(code) + "\n-- stdout --\n" + out + "-- stderr --\n" + errOut)
			compareValidateOutput(t, filepath.Join(dir, "want.txt"), got)

			jsonWant := filepath.Join(dir, "want.json")
			if _, err := os.Stat(jsonWant); err == nil {
				jcode, jout, _ := runCLI(t, "validate", "--json", "-c", file)
				if jcode != code {
					t.Errorf("--json exit %d, without it %d", jcode, code)
				}
				compareValidateOutput(t, jsonWant, normalize(jout))
			}
		})
	}
}

// compareValidateOutput compares got with the content of file, or rewrites file under
// -update-validate.
func compareValidateOutput(t *testing.T, file, got string) {
	t.Helper()
	if *updateValidate {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/tributary/cli -run TestValidateGolden -update-validate to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got ---\n%s--- want ---\n%s", file, got, want)
	}
}
