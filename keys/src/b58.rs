//! Base58 text (the Bitcoin alphabet, as `bs58` writes it) for keys, signatures and peer ids.
//!
//! A directory row names its signer by its `did:key` text, so listing 10,000 spaces encodes 10,000 keys,
//! and `bs58`'s encoder (one base-58 digit at a time for every input byte) was 6 % of that command's CPU.
//! [`encode`] works in limbs of five base-58 digits fed four input bytes at a time, about a tenth of the
//! divisions, and writes the same text; decoding stays with `bs58`.

/// The Bitcoin base58 alphabet.
const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// One limb: five base-58 digits.
const LIMB: u64 = 58 * 58 * 58 * 58 * 58;

/// `input` as base58 text: each leading zero byte is a `1`, the rest the number's digits.
pub fn encode(input: &[u8]) -> String {
    let zeros = input.iter().take_while(|&&b| b == 0).count();
    // The number in base 58^5, least significant limb first. A limb is under 2^30 and is shifted by at
    // most 32 bits before its carry (under 2^33) is added, so every step fits a u64.
    let mut limbs: Vec<u64> = Vec::with_capacity(input.len() / 3 + 1);
    let head = input.len() % 4;
    let chunks = std::iter::once(&input[..head])
        .filter(|c| !c.is_empty())
        .chain(input[head..].chunks(4));
    for chunk in chunks {
        let shift = 8 * chunk.len() as u32;
        let mut carry = chunk.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
        for limb in limbs.iter_mut() {
            let x = (*limb << shift) + carry;
            *limb = x % LIMB;
            carry = x / LIMB;
        }
        while carry > 0 {
            limbs.push(carry % LIMB);
            carry /= LIMB;
        }
    }
    let mut digits: Vec<u8> = Vec::with_capacity(zeros + limbs.len() * 5);
    digits.resize(zeros, ALPHABET[0]);
    let mut started = false;
    for &limb in limbs.iter().rev() {
        let mut five = [0u8; 5];
        let mut n = limb;
        for d in five.iter_mut().rev() {
            *d = (n % 58) as u8;
            n /= 58;
        }
        for d in five {
            // The number's own leading zero digits are not written (the zero bytes were, as `1`s).
            started |= d != 0;
            if started {
                digits.push(ALPHABET[usize::from(d)]);
            }
        }
    }
    // Only alphabet bytes were pushed.
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edge_cases_read_as_bs58_writes_them() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0; 5],
            vec![0, 0, 1],
            vec![1],
            vec![57],
            vec![58],
            vec![255],
            vec![255; 34],
            vec![255; 64],
            vec![0, 255, 0, 255],
            [vec![0xed, 0x01], vec![7; 32]].concat(),
        ];
        for c in cases {
            assert_eq!(encode(&c), bs58::encode(&c).into_string(), "{c:?}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_read_as_bs58_writes_them(
            zeros in 0usize..4,
            rest in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let input = [vec![0; zeros], rest].concat();
            prop_assert_eq!(encode(&input), bs58::encode(&input).into_string());
        }
    }
}
