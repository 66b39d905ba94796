package consumer

// ScriptBudget is the most bytes one script call moves beyond its first
// entry, for every script that moves entries between lists (a take, a
// commit, a hand-back, a replay, a promotion): a list of big entries moves
// in several calls, each short, so that no call holds Redis past a bound,
// nor anyone's heartbeat or lease renewal behind it. Declared once here;
// the scripts receive it in ARGV.
const ScriptBudget = 4 << 20
