//go:build !race

package keytable

// raceEnabled reports whether the test binary was built with -race.
const raceEnabled = false
