-- @version 2
-- One volunteer, one vote (BOINC's one_result_per_user_per_wu): a node belongs to the enrollment
-- token it enrolled with, and two nodes of one volunteer never hold replicas of the same unit.
-- Nodes enrolled before this version have none and count as a volunteer each (-node id).
ALTER TABLE nodes ADD COLUMN volunteer INTEGER REFERENCES tokens (id);
ALTER TABLE replicas ADD COLUMN volunteer INTEGER NOT NULL DEFAULT 0;
UPDATE replicas SET volunteer = -node_id;
CREATE INDEX nodes_volunteer ON nodes (volunteer);
-- replicas.verdict 3: a result taken on its node's word alone (quorum 1), which earns no trust.
