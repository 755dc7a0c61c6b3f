# make-text.awk: deterministic synthetic corpora for the self-contained demo (no ../shared).
# usage: awk -v kind=general|domain -v docs=N -v seed=S -f demo/make-text.awk > out.txt
# "general" is simple children's stories; "domain" is a small made-up astronomy
# field guide with its own vocabulary and facts. Documents are separated by blank lines.
function pick(arr, n) { return arr[int(rand() * n) + 1] }
function art(w) { return (w ~ /^[aeiou]/ ? "an " : "a ") w }
BEGIN {
    srand(seed + 0)
    split("Tom Lily Max Mia Ben Sue Sam Anna Leo Zoe", names, " "); nn = 10
    split("dog cat bird fox bear frog duck rabbit", animals, " "); na = 8
    split("park forest garden river beach hill farm school", places, " "); np = 8
    split("happy sad tired excited brave scared", moods, " "); nm = 6
    split("ball kite apple boat book hat drum cake", things, " "); nt = 8
    split("found|lost|shared|painted|carried|hid", verbs, "|"); nv = 6
    split("Vela Orin Kestra Thule Mirra Dova Sabik Telen Ysolde Carrow", planets, " "); npl = 10
    split("red dwarf|blue giant|yellow star|white dwarf|orange giant", stars, "|"); ns = 5
    split("methane ice|iron dust|silica sand|frozen nitrogen|basalt plains|sulfur lakes", surfaces, "|"); nsu = 6
    split("rings|auroras|storms|geysers|canyons|volcanoes", features, "|"); nf = 6
    for (d = 0; d < docs; d++) {
        if (kind == "domain") {
            p = pick(planets, npl); s = pick(stars, ns)
            printf "The planet %s orbits %s every %d days. ", p, art(s), 20 + int(rand() * 700)
            printf "Its surface is covered with %s, and its atmosphere is thin. ", pick(surfaces, nsu)
            printf "%s has %d moons and is known for its %s. ", p, int(rand() * 9), pick(features, nf)
            printf "Astronomers measured a surface temperature of %d kelvin on %s. ", 40 + int(rand() * 600), p
            printf "The %s of %s were first observed by a survey telescope.\n\n", pick(features, nf), p
        } else {
            a = pick(names, nn); b = pick(names, nn); an = pick(animals, na); pl = pick(places, np)
            printf "Once upon a time, %s went to the %s with a little %s. ", a, pl, an
            printf "%s was %s because %s %s %s. ", a, pick(moods, nm), b, pick(verbs, nv), art(pick(things, nt))
            printf "The %s ran around and played. %s said, \"Let us play together!\" ", an, b
            printf "They played until the sun went down, and %s felt %s.\n\n", a, pick(moods, nm)
        }
    }
}
