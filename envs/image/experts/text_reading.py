# Expert for text_reading (helpers: ocr_tools, white_tag).
# Parameter: ALPHABET (the characters a printed code may hold).

# %% turn
inside = find_white_patch(image)

# %% turn
print(read_tag(inside, ALPHABET))
