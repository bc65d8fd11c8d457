package churntest

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := writeFigures(); err != nil {
		fmt.Fprintln(os.Stderr, "churntest: figures:", err)
		code = 1
	}
	os.Exit(code)
}
