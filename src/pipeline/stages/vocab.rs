//! Word banks the stub stages draw from. Fixed lists in a fixed order: part
//! of what makes a stub artifact's bytes reproducible.

pub const DEFAULT_CHARACTERS: [(&str, &str); 4] = [
    (
        "Ada",
        "A restless engineer who talks to machines more easily than to people.",
    ),
    (
        "Jonah",
        "Ada's older brother, a ferry pilot who keeps every promise but one.",
    ),
    (
        "Wren",
        "A stranger with a borrowed coat and a map that is not hers.",
    ),
    (
        "Silas",
        "The night watchman, patient, observant, older than he admits.",
    ),
];

pub const DEFAULT_LOCATIONS: [(&str, &str); 4] = [
    (
        "Harbor Office",
        "A cramped office above the docks, charts pinned over every window.",
    ),
    (
        "Sea Wall",
        "A long concrete wall with the tide breaking on one side.",
    ),
    (
        "Ferry Deck",
        "The open upper deck of an old car ferry, paint flaking in the wind.",
    ),
    (
        "Boarding House Kitchen",
        "A warm kitchen with a kettle that never quite stops whistling.",
    ),
];

/// Words that make a location an exterior in its slugline.
pub const EXTERIOR_WORDS: [&str; 22] = [
    "beach", "bridge", "cliff", "coast", "deck", "field", "forest", "garden", "gallery", "harbor",
    "harbour", "hill", "jetty", "lane", "park", "pier", "road", "roof", "shore", "street", "wall",
    "yard",
];

pub const TIMES_OF_DAY: [&str; 4] = ["DAY", "NIGHT", "DAWN", "DUSK"];

pub const PROPS: [&str; 24] = [
    "brass telescope",
    "oil lantern",
    "folded letter",
    "ship's logbook",
    "pocket watch",
    "radio handset",
    "tin of matches",
    "rain-soaked map",
    "wool scarf",
    "kettle",
    "photograph",
    "iron key",
    "ferry ticket",
    "thermos",
    "field notebook",
    "signal flare",
    "rope coil",
    "transistor radio",
    "chipped mug",
    "bicycle",
    "umbrella",
    "toolbox",
    "postcard",
    "flashlight",
];

/// `{a}`/`{b}` are character cue names, `{loc}` a location, `{prop}` a prop.
pub const ACTIONS: [&str; 14] = [
    "{a} crosses to the window and watches the weather come in over {loc}.",
    "{a} sets the {prop} down with great care, as if it might break the silence.",
    "Rain needles the glass. {a} doesn't look up.",
    "{a} turns the {prop} over in both hands, reading something only they can see.",
    "{a} and {b} stand a careful distance apart.",
    "A long beat. Somewhere below, a foghorn answers nobody.",
    "{b} notices the {prop} and says nothing. That is its own kind of answer.",
    "The lights of {loc} flicker, steady, flicker again.",
    "{a} pockets the {prop} before {b} can reach for it.",
    "Wind worries at the door. {a} leans on it until it latches.",
    "{b} laughs despite everything, then stops, surprised at the sound.",
    "{a} checks the time, then checks it again.",
    "Gulls wheel overhead. {a} shields their eyes against the glare.",
    "{b} lays the {prop} on the table between them like a card in a game.",
];

pub const LINES: [&str; 24] = [
    "You said it would be finished by tonight.",
    "I said I would try. Those are different promises.",
    "Where did you find this?",
    "Exactly where you left it.",
    "We don't have to decide anything yet.",
    "The tide won't wait for us to be ready.",
    "Tell me the truth, just once.",
    "I have been. You weren't listening.",
    "Is that the last one?",
    "It's the only one that matters.",
    "Stay. Just until the storm passes.",
    "Every storm passes. That's never been the problem.",
    "Someone has been here.",
    "Then they know we're coming.",
    "I kept it. All these years.",
    "Why would you do that?",
    "Look at the water. It's changing.",
    "Everything changes. That's what scares you.",
    "Give me one good reason.",
    "I'll give you three, and you'll hate all of them.",
    "It still works.",
    "Of course it does. You built it.",
    "We should go. Now.",
    "Not without the map.",
];

pub const PARENTHETICALS: [&str; 8] = [
    "(quietly)",
    "(not looking up)",
    "(beat)",
    "(almost a smile)",
    "(over the wind)",
    "(to herself)",
    "(too quickly)",
    "(softening)",
];

pub const SUMMARY_VERBS: [&str; 8] = [
    "confronts",
    "confides in",
    "waits for",
    "follows",
    "bargains with",
    "shelters with",
    "misleads",
    "finally listens to",
];

pub const SHOT_SIZES: [&str; 8] = [
    "extreme wide",
    "wide",
    "full",
    "medium",
    "medium close-up",
    "close-up",
    "extreme close-up",
    "insert",
];

pub const ANGLES: [&str; 7] = [
    "eye level",
    "high",
    "low",
    "overhead",
    "dutch",
    "over the shoulder",
    "point of view",
];

pub const CAMERA_MOVES: [&str; 10] = [
    "static",
    "pan",
    "tilt",
    "dolly in",
    "dolly out",
    "tracking",
    "handheld",
    "crane",
    "push in",
    "zoom",
];
