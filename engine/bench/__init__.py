"""Side-by-side benchmark of decoding methods on one loaded target (`d2sd bench`)."""
