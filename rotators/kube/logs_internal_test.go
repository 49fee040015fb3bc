package kube

import (
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
)

type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("stream reset")
	}
	return n, err
}

func TestCountLines(t *testing.T) {
	long := strings.Repeat("a", 3*maxLogLineBytes)
	tests := []struct {
		name        string
		in          string
		pattern     string
		lines, hits int
	}{
		{name: "empty", in: "", pattern: "x", lines: 0, hits: 0},
		{name: "one line no newline", in: "ERROR x", pattern: "ERROR", lines: 1, hits: 1},
		{name: "mixed", in: "ok\nERROR a\nok\nWARN\nERROR b\n", pattern: "ERROR", lines: 5, hits: 2},
		{name: "no match", in: "ok\nfine\n", pattern: "ERROR", lines: 2, hits: 0},
		{name: "anchored pattern ignores CRLF", in: "end\r\nend\n", pattern: "^end$", lines: 2, hits: 2},
		{name: "blank lines count", in: "\n\n\n", pattern: "^$", lines: 3, hits: 3},
		{name: "long line matched on its head", in: "ERROR" + long + "\nnext\n", pattern: "ERROR", lines: 2, hits: 1},
		{name: "long line tail not matched", in: long + "ERROR\nnext\n", pattern: "ERROR", lines: 2, hits: 0},
		{name: "long last line without newline", in: "x\n" + long, pattern: "^a", lines: 2, hits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, hits, err := countLines(strings.NewReader(tt.in), regexp.MustCompile(tt.pattern))
			if err != nil {
				t.Fatal(err)
			}
			if lines != tt.lines || hits != tt.hits {
				t.Errorf("got lines=%d hits=%d, want lines=%d hits=%d", lines, hits, tt.lines, tt.hits)
			}
		})
	}
}

func TestCountLinesReadErrorCarriesNoContent(t *testing.T) {
	const content = "token=s3cr3t-value\n"
	lines, _, err := countLines(failingReader{strings.NewReader(content)}, regexp.MustCompile("token"))
	if err == nil || !strings.Contains(err.Error(), "stream reset") {
		t.Fatalf("err = %v, want the stream error", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Error("error carries log content")
	}
	if lines != 1 {
		t.Errorf("lines = %d before the error, want 1", lines)
	}
}
