-- How a VM's root is made: 'clone', its own copy of the image's root file
-- system (VMs made before layers, and the image builder's); 'layer', the
-- image's root shared read-only with an overlay layer of its own.
ALTER TABLE vms ADD COLUMN layout TEXT NOT NULL DEFAULT 'clone';
