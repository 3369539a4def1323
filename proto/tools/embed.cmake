# proto/tools/embed.cmake: turns a binary file into a C source defining `const unsigned char NAME[]` and
# `const size_t NAME_size`. Run with cmake -DIN=... -DOUT=... -DNAME=... -P embed.cmake (build time).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR size "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE "${OUT}" "/* Generated from ${IN} by proto/tools/embed.cmake. Do not edit. */\n#include <stddef.h>\n"
     "const unsigned char ${NAME}[] = {\n${body}0};\nconst size_t ${NAME}_size = ${size};\n")
