package keyspace

import "strings"

// Hash slots of Redis Cluster: a script's keys must all be in one slot.
// Package config checks a configuration's keys with them, the worker SDK
// its queues' keys.

// ClusterSlots is the number of hash slots of a Redis Cluster.
const ClusterSlots = 16384

// HashInput is what Redis Cluster hashes of key: its hash tag, the text
// between the first '{' and the first '}' after it when that is not
// empty, else the whole key.
func HashInput(key string) string {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			return key[open+1 : open+1+n]
		}
	}
	return key
}

// Slot is the hash slot of key (CRC16-XMODEM of its hash input, modulo
// 16384), as CLUSTER KEYSLOT computes it.
func Slot(key string) int {
	var crc uint16
	for _, b := range []byte(HashInput(key)) {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % ClusterSlots
}
