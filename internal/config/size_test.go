package config

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		err  bool
	}{
		{"512MiB", 512 << 20, false},
		{"512 mib", 512 << 20, false},
		{"1GiB", 1 << 30, false},
		{"1.5GB", 1_500_000_000, false},
		{"256MB", 256_000_000, false},
		{"64KiB", 64 << 10, false},
		{"1048576", 1 << 20, false},
		{"100b", 100, false},
		{"lots", 0, true},
		{"-1MiB", 0, true},
		{"12 parsecs", 0, true},
	} {
		var got struct {
			M ByteSize `yaml:"m"`
		}
		err := yaml.Unmarshal([]byte("m: "+tc.in), &got)
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "is not a size") {
				t.Errorf("%q: err %v", tc.in, err)
			}
			continue
		}
		if err != nil || got.M != tc.want {
			t.Errorf("%q: got %d, %v; want %d", tc.in, got.M, err, tc.want)
		}
	}
	for b, want := range map[ByteSize]string{512 << 20: "512MiB", 1 << 30: "1GiB", 1500: "1500", 3 << 10: "3KiB"} {
		if b.String() != want {
			t.Errorf("%d prints as %s, want %s", b, b, want)
		}
	}
}

func TestMemoryLimitMinimum(t *testing.T) {
	c := Default()
	c.MemoryLimit = 64 << 20
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "memory_limit: 64MiB is below the minimum of 256MiB") {
		t.Fatalf("Validate: %v", err)
	}
}
